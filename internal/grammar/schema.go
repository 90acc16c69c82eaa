package grammar

import (
	"encoding/json"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// annotations never constrain a document.
var annotations = []string{"title", "description", "examples", "default", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly"}

// supported are the keywords the converter enforces (or, for $defs and
// definitions, reads when a $ref points into them).
var supported = map[string]bool{
	"$defs": true, "definitions": true, "$ref": true,
	"type": true, "enum": true, "const": true,
	"anyOf": true, "oneOf": true, "allOf": true,
	"properties": true, "required": true, "additionalProperties": true,
	"items": true, "prefixItems": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
}

// typeKeywords are the keywords that apply to one type only.
var typeKeywords = map[string][]string{
	"object":  {"properties", "required", "additionalProperties"},
	"array":   {"items", "prefixItems", "minItems", "maxItems"},
	"string":  {"minLength", "maxLength", "pattern", "format"},
	"number":  {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
	"integer": nil,
	"boolean": nil,
	"null":    nil,
}

var typeOrder = []string{"object", "array", "string", "number", "integer", "boolean", "null"}

// maxDepth bounds how deep the converter follows a schema (nesting,
// references merged into allOf): a recursive schema ends as a recursive
// rule, or as this error, never as a hang.
const maxDepth = 100

type converter struct {
	b     *Builder
	doc   any
	base  string
	refs  map[string]string // resolved $ref -> its rule
	depth int
	steps int // body and merge calls, against maxSteps
}

// maxSteps bounds the work of one conversion: merging references into
// allOf and anyOf branches can multiply it at every level.
const maxSteps = 20000

func (c *converter) step(path string) error {
	c.steps++
	if c.steps > maxSteps {
		return &SchemaError{Path: path, Msg: "the schema is too complex to convert"}
	}
	return nil
}

func isAnnotation(k string) bool { return slices.Contains(annotations, k) }

// ruleFor adds the rule for schema s and returns its name.
func (c *converter) ruleFor(s any, name, path string) (string, error) {
	if r, ok := s.(*object); ok && len(r.keys) == 1 && r.has("$ref") {
		return c.refRule(r.vals["$ref"], path)
	}
	body, err := c.body(s, name, path)
	if err != nil {
		return "", err
	}
	return c.b.add(name, body), nil
}

func (c *converter) body(s any, name, path string) (string, error) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		return "", &SchemaError{Path: path, Msg: "the schema nests (or refers to itself through allOf) too deep"}
	}
	if err := c.step(path); err != nil {
		return "", err
	}
	o, err := asSchema(s, path)
	if err != nil || o == nil {
		if err == nil {
			return c.b.primitive("value"), nil
		}
		return "", err
	}
	for _, k := range o.keys {
		if !supported[k] && !isAnnotation(k) {
			return "", &UnsupportedError{Keyword: k, Path: path}
		}
	}
	if u, ok := o.vals["uniqueItems"]; ok && u != false {
		return "", &UnsupportedError{Keyword: "uniqueItems", Path: path, Detail: "only uniqueItems false is supported"}
	}
	if ref, ok := o.vals["$ref"]; ok {
		rest := o.without(append([]string{"$ref", "$defs", "definitions"}, annotations...)...)
		if len(rest.keys) == 0 {
			return c.refRule(ref, path)
		}
		target, err := c.resolve(ref, path)
		if err != nil {
			return "", err
		}
		merged, err := c.merge(rest, target, path)
		if err != nil {
			return "", err
		}
		return c.body(merged, name, path)
	}
	if all, ok := o.vals["allOf"]; ok {
		merged := o.without("allOf")
		subs, ok := all.([]any)
		if !ok || len(subs) == 0 {
			return "", &SchemaError{Path: path, Msg: "allOf must be a non-empty array"}
		}
		for _, sub := range subs {
			if merged, err = c.merge(merged, sub, path+"/allOf"); err != nil {
				return "", err
			}
		}
		return c.body(merged, name, path)
	}
	if o.has("anyOf") && o.has("oneOf") {
		return "", &UnsupportedError{Keyword: "oneOf", Path: path, Detail: "together with anyOf"}
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		v, ok := o.vals[kw]
		if !ok {
			continue
		}
		branches, ok := v.([]any)
		if !ok || len(branches) == 0 {
			return "", &SchemaError{Path: path, Msg: kw + " must be a non-empty array"}
		}
		siblings := o.without(append([]string{kw, "$defs", "definitions"}, annotations...)...)
		var alts []string
		for i, br := range branches {
			bpath := path + "/" + kw + "/" + strconv.Itoa(i)
			if len(siblings.keys) > 0 {
				if br, err = c.merge(siblings, br, bpath); err != nil {
					return "", err
				}
			}
			r, err := c.ruleFor(br, name+"-"+strconv.Itoa(i), bpath)
			if err != nil {
				return "", err
			}
			alts = append(alts, r)
		}
		return strings.Join(alts, " | "), nil
	}
	types, err := typesOf(o, path)
	if err != nil {
		return "", err
	}
	if o.has("enum") || o.has("const") {
		return c.enumBody(o, types, path)
	}
	if types == nil {
		return c.b.primitive("value"), nil
	}
	var alts []string
	for _, t := range types {
		a, err := c.typeBody(o, t, name, path)
		if err != nil {
			return "", err
		}
		alts = append(alts, a)
	}
	return strings.Join(alts, " | "), nil
}

// asSchema checks that s is a schema: an object, or true (returned as
// nil: any value).
func asSchema(s any, path string) (*object, error) {
	switch v := s.(type) {
	case *object:
		return v, nil
	case bool:
		if v {
			return nil, nil
		}
		return nil, &SchemaError{Path: path, Msg: "the schema false accepts no value"}
	}
	return nil, &SchemaError{Path: path, Msg: "a schema must be an object or a boolean"}
}

// typesOf lists the types a document may have: those of "type", or those
// whose keywords the schema uses (a restriction: without "type" the
// schema also accepts other types), or nil for any value.
func typesOf(o *object, path string) ([]string, error) {
	if t, ok := o.vals["type"]; ok {
		var list []any
		switch v := t.(type) {
		case string:
			list = []any{v}
		case []any:
			list = v
		default:
			return nil, &SchemaError{Path: path, Msg: "type must be a string or an array"}
		}
		var out []string
		for _, e := range list {
			s, ok := e.(string)
			if _, known := typeKeywords[s]; !ok || !known {
				return nil, &SchemaError{Path: path, Msg: "unknown type " + toJSON(e)}
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, &SchemaError{Path: path, Msg: "type is an empty array"}
		}
		return out, nil
	}
	var out []string
	for _, t := range typeOrder {
		for _, k := range typeKeywords[t] {
			if o.has(k) {
				out = append(out, t)
				break
			}
		}
	}
	return out, nil
}

func (c *converter) typeBody(o *object, t, name, path string) (string, error) {
	switch t {
	case "null", "boolean":
		return c.b.primitive(t), nil
	case "string":
		return c.stringBody(o, path)
	case "integer":
		return c.integerBody(o, path)
	case "number":
		return c.numberBody(o, path)
	case "object":
		return c.objectBody(o, name, path)
	}
	return c.arrayBody(o, name, path)
}

// refRule is the rule of a $ref target, made once per target so that
// recursive schemas become recursive rules.
func (c *converter) refRule(ref any, path string) (string, error) {
	s, ok := ref.(string)
	if !ok {
		return "", &SchemaError{Path: path, Msg: "$ref must be a string"}
	}
	if r, ok := c.refs[s]; ok {
		return r, nil
	}
	target, err := c.resolve(ref, path)
	if err != nil {
		return "", err
	}
	seg := s[strings.LastIndex(s, "/")+1:]
	if seg == "" || seg == "#" {
		seg = "root"
	}
	// Reserve the name first: the target may refer to itself.
	name := c.b.add(c.base+"-ref-"+seg, "\x00pending "+s)
	c.refs[s] = name
	body, err := c.body(target, name, refPath(s))
	if err != nil {
		return "", err
	}
	c.b.rules[name] = body
	return name, nil
}

func refPath(ref string) string {
	p, _ := url.PathUnescape(strings.TrimPrefix(ref, "#"))
	return p
}

// resolve follows a local $ref (a JSON pointer in the document), and
// the references it lands on.
func (c *converter) resolve(ref any, path string) (any, error) {
	for range 32 {
		s, ok := ref.(string)
		if !ok {
			return nil, &SchemaError{Path: path, Msg: "$ref must be a string"}
		}
		if !strings.HasPrefix(s, "#") {
			return nil, &UnsupportedError{Keyword: "$ref", Path: path, Detail: "only local references (#/...) are supported, not " + strconv.Quote(s)}
		}
		p, err := url.PathUnescape(s[1:])
		if err != nil {
			return nil, &SchemaError{Path: path, Msg: "bad $ref " + strconv.Quote(s)}
		}
		if p != "" && !strings.HasPrefix(p, "/") {
			return nil, &UnsupportedError{Keyword: "$ref", Path: path, Detail: "anchors are not supported: " + strconv.Quote(s)}
		}
		cur := c.doc
		if p != "" {
			for _, tok := range strings.Split(p[1:], "/") {
				tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
				switch v := cur.(type) {
				case *object:
					next, ok := v.vals[tok]
					if !ok {
						return nil, &SchemaError{Path: path, Msg: "$ref " + strconv.Quote(s) + " points nowhere"}
					}
					cur = next
				case []any:
					i, err := strconv.Atoi(tok)
					if err != nil || i < 0 || i >= len(v) {
						return nil, &SchemaError{Path: path, Msg: "$ref " + strconv.Quote(s) + " points nowhere"}
					}
					cur = v[i]
				default:
					return nil, &SchemaError{Path: path, Msg: "$ref " + strconv.Quote(s) + " points nowhere"}
				}
			}
		}
		o, ok := cur.(*object)
		if !ok || !o.has("$ref") {
			return cur, nil
		}
		rest := o.without(append([]string{"$ref", "$defs", "definitions"}, annotations...)...)
		if len(rest.keys) > 0 {
			return cur, nil // body merges the siblings
		}
		ref = o.vals["$ref"]
	}
	return nil, &SchemaError{Path: path, Msg: "$ref chain too long"}
}

// merge is one schema that requires what a and b both require, for
// allOf; what it cannot combine is an UnsupportedError.
func (c *converter) merge(a *object, bs any, path string) (*object, error) {
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxDepth {
		return nil, &SchemaError{Path: path, Msg: "the schema refers to itself through allOf"}
	}
	if err := c.step(path); err != nil {
		return nil, err
	}
	b, err := asSchema(bs, path)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return a, nil
	}
	if b.has("$ref") {
		target, err := c.resolve(b.vals["$ref"], path)
		if err != nil {
			return nil, err
		}
		if b, err = c.merge(b.without("$ref"), target, path); err != nil {
			return nil, err
		}
	}
	if b.has("allOf") {
		inner := b.without("allOf")
		subs, ok := b.vals["allOf"].([]any)
		if !ok {
			return nil, &SchemaError{Path: path, Msg: "allOf must be an array"}
		}
		for _, s := range subs {
			if inner, err = c.merge(inner, s, path+"/allOf"); err != nil {
				return nil, err
			}
		}
		b = inner
	}
	for _, side := range [][2]*object{{a, b}, {b, a}} {
		if ap, ok := side[0].vals["additionalProperties"]; ok && ap != true {
			mine, _ := side[0].vals["properties"].(*object)
			if other, ok := side[1].vals["properties"].(*object); ok {
				for _, k := range other.keys {
					if mine == nil || !mine.has(k) {
						return nil, &UnsupportedError{Keyword: "additionalProperties", Path: path, Detail: "in allOf with properties it does not list"}
					}
				}
			}
		}
	}
	out := a.clone()
	for _, k := range b.keys {
		bv := b.vals[k]
		av, ok := out.vals[k]
		if !ok {
			out.set(k, bv)
			continue
		}
		if isAnnotation(k) || k == "$defs" || k == "definitions" || equalJSON(av, bv) {
			continue
		}
		switch k {
		case "properties":
			ap, ok1 := av.(*object)
			bp, ok2 := bv.(*object)
			if !ok1 || !ok2 {
				return nil, &SchemaError{Path: path, Msg: "properties must be an object"}
			}
			m := ap.clone()
			for _, pk := range bp.keys {
				if m.has(pk) {
					both := newObject()
					both.set("allOf", []any{m.vals[pk], bp.vals[pk]})
					m.set(pk, both)
				} else {
					m.set(pk, bp.vals[pk])
				}
			}
			out.set(k, m)
		case "required":
			ar, _ := av.([]any)
			br, _ := bv.([]any)
			r := append([]any(nil), ar...)
			for _, x := range br {
				if !slices.ContainsFunc(r, func(y any) bool { return equalJSON(x, y) }) {
					r = append(r, x)
				}
			}
			out.set(k, r)
		case "type":
			at, err := typesOf(out, path)
			if err != nil {
				return nil, err
			}
			bt, err := typesOf(b, path)
			if err != nil {
				return nil, err
			}
			var both []any
			for _, t := range at {
				if slices.Contains(bt, t) {
					both = append(both, t)
				} else if t == "number" && slices.Contains(bt, "integer") {
					both = append(both, "integer")
				} else if t == "integer" && slices.Contains(bt, "number") {
					both = append(both, "integer")
				}
			}
			if len(both) == 0 {
				return nil, &SchemaError{Path: path, Msg: "allOf of types with nothing in common"}
			}
			out.set(k, both)
		case "minimum", "minLength", "minItems", "maximum", "maxLength", "maxItems":
			x, ok1 := av.(json.Number)
			y, ok2 := bv.(json.Number)
			if !ok1 || !ok2 {
				return nil, &SchemaError{Path: path, Msg: k + " must be a number"}
			}
			fx, _ := x.Float64()
			fy, _ := y.Float64()
			if (fy > fx) == strings.HasPrefix(k, "min") {
				out.set(k, y)
			}
		default:
			return nil, &UnsupportedError{Keyword: k, Path: path, Detail: "different values in allOf"}
		}
	}
	return out, nil
}

// enumBody is the alternation of the enum (or const) values of the
// schema's types.
func (c *converter) enumBody(o *object, types []string, path string) (string, error) {
	for _, k := range o.keys {
		if k != "enum" && k != "const" && k != "type" && k != "$defs" && k != "definitions" && !isAnnotation(k) {
			return "", &UnsupportedError{Keyword: k, Path: path, Detail: "together with enum or const"}
		}
	}
	var values []any
	if e, ok := o.vals["enum"]; ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return "", &SchemaError{Path: path, Msg: "enum must be a non-empty array"}
		}
		values = list
	}
	if cv, ok := o.vals["const"]; ok {
		if values != nil && !slices.ContainsFunc(values, func(v any) bool { return equalJSON(v, cv) }) {
			return "", &SchemaError{Path: path, Msg: "const is not one of enum"}
		}
		values = []any{cv}
	}
	var alts []string
	for _, v := range values {
		if types != nil && !slices.Contains(types, jsonType(v)) && (jsonType(v) != "integer" || !slices.Contains(types, "number")) {
			continue
		}
		lit := literal(toJSON(v))
		if !slices.Contains(alts, lit) {
			alts = append(alts, lit)
		}
	}
	if len(alts) == 0 {
		return "", &SchemaError{Path: path, Msg: "no enum value has the schema's type"}
	}
	return "(" + strings.Join(alts, " | ") + ") " + c.b.primitive("space"), nil
}

func jsonType(v any) string {
	switch t := v.(type) {
	case *object:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if f, err := t.Float64(); err == nil && f == math.Trunc(f) && !math.IsInf(f, 0) {
			return "integer"
		}
		return "number"
	}
	return "null"
}

// count reads a non-negative integer keyword; absent is def.
func count(o *object, k, path string, def int) (int, error) {
	v, ok := o.vals[k]
	if !ok {
		return def, nil
	}
	n, ok := v.(json.Number)
	f, err := n.Float64()
	if !ok || err != nil || f < 0 || f != math.Trunc(f) {
		return 0, &SchemaError{Path: path, Msg: k + " must be a non-negative integer"}
	}
	if f > maxCount {
		return 0, &UnsupportedError{Keyword: k, Path: path, Detail: "values above " + strconv.Itoa(maxCount) + " are not supported"}
	}
	return int(f), nil
}

func (c *converter) stringBody(o *object, path string) (string, error) {
	if f, ok := o.vals["format"]; ok {
		for _, k := range []string{"pattern", "minLength", "maxLength"} {
			if o.has(k) {
				return "", &UnsupportedError{Keyword: k, Path: path, Detail: "together with format"}
			}
		}
		name, ok := f.(string)
		if !ok {
			return "", &SchemaError{Path: path, Msg: "format must be a string"}
		}
		rule, ok := formats[name]
		if !ok {
			return "", &UnsupportedError{Keyword: "format", Path: path, Detail: "format " + strconv.Quote(name) + " is not supported (supported: date, time, date-time, uuid, email, hostname, ipv4)"}
		}
		return c.b.primitive(rule), nil
	}
	if p, ok := o.vals["pattern"]; ok {
		for _, k := range []string{"minLength", "maxLength"} {
			if o.has(k) {
				return "", &UnsupportedError{Keyword: k, Path: path, Detail: "together with pattern"}
			}
		}
		ps, ok := p.(string)
		if !ok {
			return "", &SchemaError{Path: path, Msg: "pattern must be a string"}
		}
		expr, err := patternGBNF(ps)
		if err != nil {
			return "", &UnsupportedError{Keyword: "pattern", Path: path, Detail: err.Error()}
		}
		return `"\"" ` + expr + ` "\"" ` + c.b.primitive("space"), nil
	}
	lo, err := count(o, "minLength", path, 0)
	if err != nil {
		return "", err
	}
	hi, err := count(o, "maxLength", path, -1)
	if err != nil {
		return "", err
	}
	if hi >= 0 && lo > hi {
		return "", &SchemaError{Path: path, Msg: "minLength is above maxLength"}
	}
	if lo == 0 && hi < 0 {
		return c.b.primitive("string"), nil
	}
	return `"\"" ` + repeat(c.b.primitive("char"), lo, hi) + ` "\"" ` + c.b.primitive("space"), nil
}
