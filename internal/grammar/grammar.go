// Package grammar writes GBNF grammars (llama.cpp's grammar syntax) that
// constrain sampling to JSON: any JSON object for response_format
// json_object, and the documents a JSON Schema accepts for json_schema and
// tool parameters.
//
// The converter follows llama.cpp's json-schema-to-grammar (rule shapes,
// property order: required properties first, each group in schema order;
// whitespace: at most one space or two newlines and 20 indents between
// tokens), with these choices of its own:
//
//   - A constraint it cannot express is an *UnsupportedError naming the
//     keyword, never ignored. Annotations (title, description, examples,
//     default, $schema, $id, $comment, deprecated, readOnly, writeOnly) are
//     ignored, as the specification allows.
//   - Where expressing a constraint exactly is impractical the grammar
//     admits a subset of the valid documents, never a superset: objects
//     without additionalProperties get no extra properties; a pattern is
//     matched whole (a string matching a pattern whole contains a match);
//     pattern character classes never produce quotes, backslashes or
//     control characters unless the pattern asks for that exact character;
//     numbers with bounds are written without exponent and their integer
//     part kept within the bounds (see numberRange); oneOf is treated as
//     anyOf, which is exact when its branches are disjoint (the usual
//     tagged unions).
//   - Formats date, time, date-time, uuid, email (a common subset),
//     ipv4 and hostname are enforced; any other format is an
//     *UnsupportedError.
package grammar

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// UnsupportedError is a schema keyword (or keyword value) the converter
// cannot enforce. Path is a JSON pointer to the schema that holds it.
type UnsupportedError struct {
	Keyword string
	Path    string
	Detail  string // optional: why
}

func (e *UnsupportedError) Error() string {
	msg := fmt.Sprintf("json schema keyword %q at %s is not supported", e.Keyword, pathOrRoot(e.Path))
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// SchemaError is a schema that is not valid JSON Schema, or one that no
// document can satisfy.
type SchemaError struct {
	Path string
	Msg  string
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("invalid json schema at %s: %s", pathOrRoot(e.Path), e.Msg)
}

func pathOrRoot(p string) string {
	if p == "" {
		return "#"
	}
	return "#" + p
}

// maxCount bounds repetition counts (maxLength, maxItems, {n,m} in a
// pattern): llama.cpp expands a bounded repetition into one rule per
// optional copy.
const maxCount = 100000

// spaceRule is llama.cpp's: bounded, so the model cannot spend its whole
// budget on whitespace.
const spaceRule = `| " " | "\n"{1,2} [ \t]{0,20}`

type primitive struct {
	body string
	deps []string
}

// primitives are rules with fixed names that other rules refer to by name.
var primitives = map[string]primitive{
	"space":         {spaceRule, nil},
	"boolean":       {`("true" | "false") space`, []string{"space"}},
	"decimal-part":  {`[0-9]{1,16}`, nil},
	"integral-part": {`[0] | [1-9] [0-9]{0,15}`, nil},
	"number":        {`("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space`, []string{"integral-part", "decimal-part", "space"}},
	"integer":       {`("-"? integral-part) space`, []string{"integral-part", "space"}},
	"value":         {`object | array | string | number | boolean | null`, []string{"object", "array", "string", "number", "boolean", "null"}},
	"object":        {`"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space`, []string{"string", "value", "space"}},
	"array":         {`"[" space ( value ("," space value)* )? "]" space`, []string{"value", "space"}},
	"char":          {`[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})`, nil},
	"key-char":      {`[^"\\\x7F\x00-\x1F]`, nil},
	"string":        {`"\"" char* "\"" space`, []string{"char", "space"}},
	"null":          {`"null" space`, []string{"space"}},
	"uuid":          {`"\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space`, []string{"space"}},
	// date admits days 01-28 only so that every date it writes exists.
	"date":             {`[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] )`, nil},
	"time":             {`([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )`, nil},
	"date-time":        {`date "T" time`, []string{"date", "time"}},
	"date-string":      {`"\"" date "\"" space`, []string{"date", "space"}},
	"time-string":      {`"\"" time "\"" space`, []string{"time", "space"}},
	"date-time-string": {`"\"" date-time "\"" space`, []string{"date-time", "space"}},
	// Hostnames and emails stay within the length limits: labels of 63,
	// names of 253 and local parts of 64 characters at most.
	"hostname":        {`[a-z0-9] ([a-z0-9-]{0,61} [a-z0-9])? ("." [a-z0-9] ([a-z0-9-]{0,61} [a-z0-9])?){0,2}`, nil},
	"hostname-string": {`"\"" hostname "\"" space`, []string{"hostname", "space"}},
	"email-string":    {`"\"" [a-zA-Z0-9_+-]{1,20} ("." [a-zA-Z0-9_+-]{1,20}){0,2} "@" [a-z0-9] ([a-z0-9-]{0,61} [a-z0-9])? ("." [a-z0-9] ([a-z0-9-]{0,61} [a-z0-9])?){0,2} "." [a-z]{2,6} "\"" space`, []string{"space"}},
	"ipv4-octet":      {`[0-9] | [1-9] [0-9] | "1" [0-9] [0-9] | "2" [0-4] [0-9] | "25" [0-5]`, nil},
	"ipv4-string":     {`"\"" ipv4-octet "." ipv4-octet "." ipv4-octet "." ipv4-octet "\"" space`, []string{"ipv4-octet", "space"}},
}

// formats maps a string format to the primitive that writes it, quotes
// included.
var formats = map[string]string{
	"date":      "date-string",
	"time":      "time-string",
	"date-time": "date-time-string",
	"uuid":      "uuid",
	"email":     "email-string",
	"hostname":  "hostname-string",
	"ipv4":      "ipv4-string",
}

// Builder collects the rules of one grammar. Schemas added with Schema can
// be combined with literals and rules of the caller's into one grammar,
// as tool calls need. A Builder is not safe for concurrent use.
type Builder struct {
	rules map[string]string
	order []string
	n     int // Schema calls, to name their rules apart
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{rules: map[string]string{}} }

// Schema adds the rules for the JSON documents schema accepts and returns
// the name of the rule of such a value (trailing whitespace included).
// References ($ref) resolve within schema.
func (b *Builder) Schema(schema []byte) (string, error) {
	doc, err := parseJSON(schema)
	if err != nil {
		return "", &SchemaError{Msg: err.Error()}
	}
	base := "schema"
	if b.n > 0 {
		base += strconv.Itoa(b.n)
	}
	b.n++
	c := &converter{b: b, doc: doc, base: base, refs: map[string]string{}}
	before := len(b.order)
	rule, err := c.ruleFor(doc, base, "")
	if err != nil {
		// Leave the builder as it was: half a schema's rules may refer to
		// rules never finished.
		for _, name := range b.order[before:] {
			delete(b.rules, name)
		}
		b.order = b.order[:before]
		return "", err
	}
	return rule, nil
}

// Literal is s as a GBNF string literal.
func (b *Builder) Literal(s string) string { return literal(s) }

// Rule adds the rule name ::= body and returns its name: name itself, or
// name with a number appended when a different rule (or a name the
// builder keeps for itself, like root) already has it.
func (b *Builder) Rule(name, body string) string { return b.add(name, body) }

// Grammar is every rule added so far, with root ::= rootBody first.
func (b *Builder) Grammar(rootBody string) string {
	var sb strings.Builder
	sb.WriteString("root ::= ")
	sb.WriteString(rootBody)
	sb.WriteByte('\n')
	for _, name := range b.order {
		sb.WriteString(name)
		sb.WriteString(" ::= ")
		sb.WriteString(b.rules[name])
		sb.WriteByte('\n')
	}
	return sb.String()
}

// FromSchema is a grammar, root rule root, that accepts exactly the JSON
// documents valid against schema (with the restrictions the package
// comment lists), with bounded whitespace around tokens.
func FromSchema(schema []byte) (string, error) {
	b := NewBuilder()
	rule, err := b.Schema(schema)
	if err != nil {
		return "", err
	}
	return b.Grammar(rule), nil
}

// JSONObject is a grammar of any JSON object, for response_format
// json_object.
func JSONObject() string {
	b := NewBuilder()
	return b.Grammar(b.primitive("object"))
}

var badName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

func (b *Builder) add(name, body string) string {
	name = strings.Trim(badName.ReplaceAllString(name, "-"), "-")
	if name == "" {
		name = "r"
	}
	for i := 0; ; i++ {
		n := name
		if i > 0 {
			n = name + strconv.Itoa(i)
		}
		if _, reserved := primitives[n]; reserved || n == "root" {
			continue
		}
		old, ok := b.rules[n]
		if !ok {
			b.rules[n] = body
			b.order = append(b.order, n)
			return n
		}
		if old == body {
			return n
		}
	}
}

// primitive adds a primitive rule and the ones it refers to.
func (b *Builder) primitive(name string) string {
	if _, ok := b.rules[name]; ok {
		return name
	}
	p := primitives[name]
	b.rules[name] = p.body
	b.order = append(b.order, name)
	for _, d := range p.deps {
		b.primitive(d)
	}
	return name
}

// literal quotes s for GBNF. Non-ASCII characters stay as they are: the
// grammar parser reads UTF-8.
func literal(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			sb.WriteString(`\"`)
		case r == '\\':
			sb.WriteString(`\\`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r < 0x20 || r == 0x7F:
			fmt.Fprintf(&sb, `\x%02X`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// classChar writes r for use inside a GBNF character class.
func classChar(r rune) string {
	switch {
	case r == ']' || r == '[' || r == '\\' || r == '"':
		return `\` + string(r)
	case r == '-' || r == '^':
		return fmt.Sprintf(`\x%02X`, r)
	case r == '\n':
		return `\n`
	case r == '\r':
		return `\r`
	case r == '\t':
		return `\t`
	case r < 0x20 || r == 0x7F:
		return fmt.Sprintf(`\x%02X`, r)
	case r > 0xFFFF:
		return fmt.Sprintf(`\U%08X`, r)
	}
	return string(r)
}

func repeat(item string, min, max int) string {
	switch {
	case max == 0:
		return `""`
	case min == 0 && max == 1:
		return item + "?"
	case min == 0 && max < 0:
		return item + "*"
	case min == 1 && max < 0:
		return item + "+"
	case max < 0:
		return fmt.Sprintf("%s{%d,}", item, min)
	case min == max:
		if min == 1 {
			return item
		}
		return fmt.Sprintf("%s{%d}", item, min)
	}
	return fmt.Sprintf("%s{%d,%d}", item, min, max)
}

// separated is min..max items with sep between them; max < 0 is no
// bound.
func separated(item, sep string, min, max int) string {
	if max == 0 {
		return ""
	}
	rest := "(" + sep + " " + item + ")"
	restMax := -1
	if max >= 0 {
		restMax = max - 1
	}
	s := item
	if r := repeat(rest, max0(min-1), restMax); restMax != 0 {
		s += " " + r
	}
	if min == 0 {
		s = "(" + s + ")?"
	}
	return s
}

func max0(n int) int {
	if n < 0 {
		return 0
	}
	return n
}
