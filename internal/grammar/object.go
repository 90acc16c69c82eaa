package grammar

import (
	"slices"
	"strconv"
	"strings"
)

// objectBody writes an object's properties as llama.cpp does: required
// ones first, then optional ones, each group in schema order, then
// additional properties (only when additionalProperties allows them:
// without it the grammar writes none, a restriction).
func (c *converter) objectBody(o *object, name, path string) (string, error) {
	props := newObject()
	if p, ok := o.vals["properties"]; ok {
		if props, ok = p.(*object); !ok {
			return "", &SchemaError{Path: path, Msg: "properties must be an object"}
		}
	}
	var required []string
	if r, ok := o.vals["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return "", &SchemaError{Path: path, Msg: "required must be an array of strings"}
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return "", &SchemaError{Path: path, Msg: "required must be an array of strings"}
			}
			if !slices.Contains(required, s) {
				required = append(required, s)
			}
		}
	}
	var additional any // nil: no additional properties
	if ap, ok := o.vals["additionalProperties"]; ok && ap != false {
		if _, err := asSchema(ap, path+"/additionalProperties"); err != nil {
			return "", err
		}
		additional = ap
	}

	kv := map[string]string{}
	addKV := func(k string, schema any, spath string) error {
		r, err := c.ruleFor(schema, name+"-"+k, spath)
		if err != nil {
			return err
		}
		kv[k] = c.b.add(name+"-"+k+"-kv", literal(quoteJSON(k))+" "+c.b.primitive("space")+` ":" `+c.b.primitive("space")+" "+r)
		return nil
	}
	var req, opt []string
	for _, k := range props.keys {
		if err := addKV(k, props.vals[k], path+"/properties/"+escapePointer(k)); err != nil {
			return "", err
		}
		if !slices.Contains(required, k) {
			opt = append(opt, k)
		}
	}
	for _, k := range props.keys {
		if slices.Contains(required, k) {
			req = append(req, k)
		}
	}
	for _, k := range required {
		if props.has(k) {
			continue
		}
		schema := additional
		if !o.has("additionalProperties") {
			schema = true
		}
		if schema == nil {
			return "", &SchemaError{Path: path, Msg: "required property " + strconv.Quote(k) + " is not allowed by additionalProperties false"}
		}
		if err := addKV(k, schema, path+"/additionalProperties"); err != nil {
			return "", err
		}
		req = append(req, k)
	}
	const more = "\x00*" // the additional properties, in kv and opt
	if additional != nil {
		value, err := c.ruleFor(additional, name+"-additional", path+"/additionalProperties")
		if err != nil {
			return "", err
		}
		names := append(slices.Clone(props.keys), req...)
		key := c.b.add(name+"-additional-k", notStrings(names, c.b.primitive("key-char"))+" "+c.b.primitive("space"))
		kv[more] = c.b.add(name+"-additional-kv", key+` ":" `+c.b.primitive("space")+" "+value)
		opt = append(opt, more)
	}

	sp := c.b.primitive("space")
	var sb strings.Builder
	sb.WriteString(`"{" ` + sp)
	for i, k := range req {
		if i > 0 {
			sb.WriteString(` "," ` + sp)
		}
		sb.WriteString(" " + kv[k])
	}
	if len(opt) > 0 {
		// Any subset of the optional properties, in order: one
		// alternative for each first property present.
		var rest func(ks []string, first bool) string
		rest = func(ks []string, first bool) string {
			k := ks[0]
			comma := `( "," ` + sp + " " + kv[k] + " )"
			var s string
			switch {
			case first && k == more:
				s = comma + "*"
			case first:
				s = comma + "?"
			case k == more:
				s = kv[k] + " " + comma + "*"
			default:
				s = kv[k]
			}
			if len(ks) > 1 {
				label := k
				if k == more {
					label = "additional"
				}
				s += " " + c.b.add(name+"-"+label+"-rest", rest(ks[1:], true))
			}
			return s
		}
		sb.WriteString(" (")
		if len(req) > 0 {
			sb.WriteString(` "," ` + sp + " ( ")
		}
		for i := range opt {
			if i > 0 {
				sb.WriteString(" | ")
			}
			sb.WriteString(rest(opt[i:], false))
		}
		if len(req) > 0 {
			sb.WriteString(" )")
		}
		sb.WriteString(" )?")
	}
	sb.WriteString(` "}" ` + sp)
	return sb.String(), nil
}

func escapePointer(k string) string {
	return strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")
}

// notStrings is a JSON string (quotes included) that is none of names.
// Its characters are unescaped ones only, so that no escape can spell a
// name in disguise.
func notStrings(names []string, char string) string {
	type node struct {
		next map[rune]*node
		end  bool
	}
	root := &node{next: map[rune]*node{}}
	for _, s := range names {
		n := root
		for _, r := range s {
			if n.next[r] == nil {
				n.next[r] = &node{next: map[rune]*node{}}
			}
			n = n.next[r]
		}
		n.end = true
	}
	var visit func(n *node) string
	visit = func(n *node) string {
		var alts []string
		if !n.end {
			alts = append(alts, "")
		}
		rs := make([]rune, 0, len(n.next))
		for r := range n.next {
			rs = append(rs, r)
		}
		slices.Sort(rs)
		reject := `[^"\\\x7F\x00-\x1F`
		for _, r := range rs {
			alts = append(alts, "["+classChar(r)+"] ("+visit(n.next[r])+")")
			reject += classChar(r)
		}
		alts = append(alts, reject+"] "+char+"*")
		return strings.Join(alts, " | ")
	}
	return `"\"" (` + visit(root) + `) "\""`
}

// arrayBody writes minItems..maxItems items: prefixItems (or draft 4's
// items array) first, then items (none when items is absent after a
// prefix, a restriction).
func (c *converter) arrayBody(o *object, name, path string) (string, error) {
	lo, err := count(o, "minItems", path, 0)
	if err != nil {
		return "", err
	}
	hi, err := count(o, "maxItems", path, -1)
	if err != nil {
		return "", err
	}
	var prefix []any
	items, hasItems := o.vals["items"]
	if p, ok := o.vals["prefixItems"]; ok {
		if prefix, ok = p.([]any); !ok {
			return "", &SchemaError{Path: path, Msg: "prefixItems must be an array"}
		}
	} else if list, ok := items.([]any); ok {
		prefix, items, hasItems = list, nil, false
	}
	if hasItems && items == false {
		hasItems = false
	}
	if !hasItems && (len(prefix) > 0 || o.has("items")) {
		// No items after the prefix.
		if hi < 0 || hi > len(prefix) {
			hi = len(prefix)
		}
	}
	if hi >= 0 && lo > hi {
		return "", &SchemaError{Path: path, Msg: "minItems is above what maxItems and items allow"}
	}
	var itemRule string
	if hasItems {
		if itemRule, err = c.ruleFor(items, name+"-item", path+"/items"); err != nil {
			return "", err
		}
	} else if len(prefix) == 0 && !o.has("items") {
		itemRule = c.b.primitive("value")
	}
	sp := c.b.primitive("space")
	sep := `"," ` + sp
	rules := make([]string, len(prefix))
	for i, p := range prefix {
		if hi >= 0 && i >= hi {
			break
		}
		if rules[i], err = c.ruleFor(p, name+"-"+strconv.Itoa(i), path+"/prefixItems/"+strconv.Itoa(i)); err != nil {
			return "", err
		}
	}
	var elems func(i int) string
	elems = func(i int) string {
		if i == len(prefix) {
			restMax := -1
			if hi >= 0 {
				restMax = hi - i
			}
			if restMax == 0 || itemRule == "" {
				return ""
			}
			if i == 0 {
				return separated(itemRule, sep, lo, restMax)
			}
			return repeat("("+sep+" "+itemRule+")", max0(lo-i), restMax)
		}
		if hi >= 0 && i >= hi {
			return ""
		}
		s := rules[i]
		if i > 0 {
			s = sep + " " + s
		}
		if tail := elems(i + 1); tail != "" {
			s += " " + tail
		}
		if i >= lo {
			s = "(" + s + ")?"
		}
		return s
	}
	return `"[" ` + sp + " " + elems(0) + ` "]" ` + sp, nil
}
