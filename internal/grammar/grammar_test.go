package grammar

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func mustGrammar(t *testing.T, schema string) string {
	t.Helper()
	g, err := FromSchema([]byte(schema))
	if err != nil {
		t.Fatalf("%s: %v", schema, err)
	}
	return g
}

// rule is the body of rule name in grammar g.
func rule(t *testing.T, g, name string) string {
	t.Helper()
	for _, line := range strings.Split(g, "\n") {
		if body, ok := strings.CutPrefix(line, name+" ::= "); ok {
			return body
		}
	}
	t.Fatalf("no rule %s in\n%s", name, g)
	return ""
}

func TestUnsupportedKeywords(t *testing.T) {
	for _, tc := range []struct{ schema, keyword, path string }{
		{`{"type":"object","minProperties":1}`, "minProperties", "#"},
		{`{"type":"object","properties":{"a":{"type":"integer","multipleOf":3}}}`, "multipleOf", "#/properties/a"},
		{`{"type":"array","items":{"type":"string"},"uniqueItems":true}`, "uniqueItems", "#"},
		{`{"type":"array","contains":{"type":"string"}}`, "contains", "#"},
		{`{"not":{"type":"string"}}`, "not", "#"},
		{`{"if":{"type":"string"},"then":{"minLength":1}}`, "if", "#"},
		{`{"type":"object","patternProperties":{"^a":{}}}`, "patternProperties", "#"},
		{`{"type":"string","format":"uri"}`, "format", "#"},
		{`{"type":"string","pattern":"(a)\\1"}`, "pattern", "#"},
		{`{"type":"string","pattern":"a(?=b)"}`, "pattern", "#"},
		{`{"type":"string","pattern":"\\bword"}`, "pattern", "#"},
		{`{"$ref":"http://example.com/s.json"}`, "$ref", "#"},
		{`{"type":"string","enum":["a","bb"],"maxLength":1}`, "maxLength", "#"},
		{`{"type":"string","format":"date","maxLength":3}`, "maxLength", "#"},
		{`{"type":"string","maxLength":1000000}`, "maxLength", "#"},
		{`{"type":"number","minimum":0.2,"maximum":0.7}`, "minimum", "#"},
		{`{"anyOf":[{"type":"string"}],"oneOf":[{"type":"string"}]}`, "oneOf", "#"},
		{`{"allOf":[{"type":"string","pattern":"a"},{"pattern":"b"}]}`, "pattern", "#/allOf"},
		{`{"type":"object","properties":{"a~b/c":{"dependentRequired":{}}}}`, "dependentRequired", "#/properties/a~0b~1c"},
	} {
		_, err := FromSchema([]byte(tc.schema))
		var ue *UnsupportedError
		if !errors.As(err, &ue) {
			t.Errorf("%s: error %v, want an UnsupportedError", tc.schema, err)
			continue
		}
		if ue.Keyword != tc.keyword || pathOrRoot(ue.Path) != tc.path {
			t.Errorf("%s: keyword %q at %q, want %q at %q", tc.schema, ue.Keyword, pathOrRoot(ue.Path), tc.keyword, tc.path)
		}
		if !strings.Contains(err.Error(), `"`+tc.keyword+`"`) {
			t.Errorf("%s: message %q does not name %q", tc.schema, err, tc.keyword)
		}
	}
}

func TestInvalidSchemas(t *testing.T) {
	for _, s := range []string{
		``, `[`, `42`, `{"type":"strin"}`, `false`, `{"type":"string","minLength":-1}`,
		`{"type":"string","minLength":5,"maxLength":2}`, `{"$ref":"#/$defs/none"}`,
		`{"enum":[]}`, `{"type":"integer","enum":["a"]}`, `{"type":"array","minItems":3,"maxItems":1}`,
		`{"type":"object","required":["a"],"additionalProperties":false}`, `{"allOf":[{"type":"string"},{"type":"integer"}]}`,
		`{"$ref":"#"}`, `{} {}`,
	} {
		_, err := FromSchema([]byte(s))
		var se *SchemaError
		if !errors.As(err, &se) {
			t.Errorf("%q: error %v, want a SchemaError", s, err)
		}
	}
}

func TestAnnotationsIgnored(t *testing.T) {
	plain := mustGrammar(t, `{"type":"object","properties":{"a":{"type":"string"}}}`)
	annotated := mustGrammar(t, `{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","title":"T","description":"d","$comment":"c",
		"type":"object","properties":{"a":{"type":"string","description":"the a","examples":["x"],"default":"y","deprecated":false,"readOnly":true,"writeOnly":false}}}`)
	if plain != annotated {
		t.Fatalf("annotations changed the grammar:\n%s\n%s", plain, annotated)
	}
}

func TestPropertyOrder(t *testing.T) {
	g := mustGrammar(t, `{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"},"m":{"type":"boolean"},"b":{"type":"null"}},"required":["m","a"]}`)
	body := rule(t, g, "schema")
	// Required a then m (schema order), then the optional z and b.
	order := []string{"schema-a-kv", "schema-m-kv", "schema-z-kv", "schema-b-kv"}
	last := -1
	for _, r := range order {
		i := strings.Index(body, r)
		if i <= last {
			t.Fatalf("order %v not kept in %s", order, body)
		}
		last = i
	}
	if strings.Contains(g, "additional") {
		t.Fatalf("no additionalProperties, yet extra keys allowed:\n%s", g)
	}
}

func TestDeterministic(t *testing.T) {
	s := `{"type":"object","properties":{"a":{"type":"object","properties":{"x":{"enum":[1,"two",null]}},"additionalProperties":true},"b":{"anyOf":[{"type":"string","format":"uuid"},{"type":"integer","minimum":-5,"maximum":5}]}}}`
	first := mustGrammar(t, s)
	for range 20 {
		if g := mustGrammar(t, s); g != first {
			t.Fatalf("grammar changed between runs:\n%s\n%s", first, g)
		}
	}
}

func TestBuilder(t *testing.T) {
	b := NewBuilder()
	a, err := b.Schema([]byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.Schema([]byte(`{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if a == c {
		t.Fatalf("two schemas share the rule %s", a)
	}
	before := b.Grammar("x")
	if _, err := b.Schema([]byte(`{"$defs":{"d":{"type":"object","properties":{"a":{"type":"string","format":"uri"}}}},"$ref":"#/$defs/d"}`)); err == nil {
		t.Fatal("format uri accepted")
	}
	if after := b.Grammar("x"); after != before {
		t.Fatalf("a failed Schema left rules behind:\n%s", after)
	}
	if got := b.Literal("say \"hi\"\n\\"); got != `"say \"hi\"\n\\"` {
		t.Fatalf("Literal: %s", got)
	}
	call := b.Rule("call", b.Literal("<tool_call>")+" ("+a+" | "+c+") "+b.Literal("</tool_call>"))
	if call != "call" {
		t.Fatalf("Rule returned %q", call)
	}
	if again := b.Rule("call", "\"x\""); again == "call" {
		t.Fatal("Rule reused a name with a different body")
	}
	if r := b.Rule("root", `"x"`); r == "root" {
		t.Fatal("Rule handed out root")
	}
	if r := b.Rule("space", `"x"`); r == "space" {
		t.Fatal("Rule handed out a primitive's name")
	}
	g := b.Grammar(call + "+")
	if !strings.HasPrefix(g, "root ::= call+\n") {
		t.Fatalf("grammar starts %q", g[:30])
	}
	for _, r := range []string{a, c, "call", "space", "string"} {
		rule(t, g, r)
	}
}

func TestJSONObject(t *testing.T) {
	g := JSONObject()
	if !strings.HasPrefix(g, "root ::= object\n") {
		t.Fatalf("grammar:\n%s", g)
	}
	for _, r := range []string{"object", "value", "array", "string", "number", "boolean", "null", "space"} {
		rule(t, g, r)
	}
}

// gbnfRegexp turns the GBNF that intRange and numberBody write (literals,
// classes, groups, counts) into a Go regexp, to check them exhaustively.
func gbnfRegexp(g string) *regexp.Regexp {
	g = strings.ReplaceAll(g, "decimal-part", "[0-9]{1,16}")
	g = strings.ReplaceAll(g, "space", "")
	var sb strings.Builder
	for i := 0; i < len(g); i++ {
		switch c := g[i]; c {
		case ' ':
		case '"':
			var lit []byte
			for i++; g[i] != '"'; i++ {
				if g[i] == '\\' {
					i++
				}
				lit = append(lit, g[i])
			}
			sb.WriteString(regexp.QuoteMeta(string(lit)))
		case '[':
			j := strings.IndexByte(g[i:], ']')
			for g[i+j-1] == '\\' && g[i+j-2] != '\\' {
				j += 1 + strings.IndexByte(g[i+j+1:], ']')
			}
			sb.WriteString(g[i : i+j+1])
			i += j
		default:
			sb.WriteByte(c)
		}
	}
	return regexp.MustCompile("^(?:" + sb.String() + ")$")
}

func TestIntRangeExact(t *testing.T) {
	cases := [][2]int64{{0, 0}, {0, 9}, {0, 150}, {-5, 5}, {-150, -3}, {7, 1234}, {10, 99}, {100, 100}, {-1, 0}, {3, 3000}, {99, 1001}, {-1000, 12}}
	for _, c := range cases {
		re := gbnfRegexp(intRange(c[0], c[1]))
		for v := int64(-1200); v <= 3100; v++ {
			want := v >= c[0] && v <= c[1]
			if got := re.MatchString(strconv.FormatInt(v, 10)); got != want {
				t.Fatalf("range %v: %d matches %v, want %v (%s)", c, v, got, want, re)
			}
		}
		for _, s := range []string{"-0", "00", "01", "+1", ""} {
			if re.MatchString(s) && s != "-0" {
				t.Fatalf("range %v admits %q", c, s)
			}
		}
	}
}

func TestIntegerBounds(t *testing.T) {
	for _, tc := range []struct {
		schema string
		lo, hi int64
	}{
		{`{"type":"integer","minimum":3,"maximum":17}`, 3, 17},
		{`{"type":"integer","exclusiveMinimum":3,"exclusiveMaximum":17}`, 4, 16},
		{`{"type":"integer","minimum":2.5,"maximum":17.9}`, 3, 17},
		{`{"type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":17,"exclusiveMaximum":true}`, 4, 16},
		{`{"type":"integer","minimum":-20,"exclusiveMinimum":-30}`, -20, 5000},
		{`{"type":"integer","maximum":-7}`, -5000, -7},
	} {
		g := mustGrammar(t, tc.schema)
		re := gbnfRegexp(rule(t, g, "schema"))
		for v := int64(-5000); v <= 5000; v++ {
			want := v >= tc.lo && v <= tc.hi
			if got := re.MatchString(strconv.FormatInt(v, 10)); got != want {
				t.Fatalf("%s: %d matches %v, want %v", tc.schema, v, got, want)
			}
		}
	}
}

// Bounded numbers never admit a value outside the bounds.
func TestNumberBounds(t *testing.T) {
	for _, tc := range []struct {
		schema     string
		lo, hi     float64
		loEx, hiEx bool
	}{
		{`{"type":"number","minimum":-2.5,"exclusiveMaximum":10}`, -2.5, 10, false, true},
		{`{"type":"number","minimum":0,"maximum":1}`, 0, 1, false, false},
		{`{"type":"number","exclusiveMinimum":0,"maximum":3.5}`, 0, 3.5, true, false},
		{`{"type":"number","minimum":-12,"maximum":-1}`, -12, -1, false, false},
	} {
		g := mustGrammar(t, tc.schema)
		re := gbnfRegexp(rule(t, g, "schema"))
		admitted := 0
		for i := -1500; i <= 1500; i++ {
			for _, s := range []string{strconv.Itoa(i / 100), strconv.FormatFloat(float64(i)/100, 'f', 2, 64), strconv.FormatFloat(float64(i)/100, 'f', 1, 64)} {
				if !re.MatchString(s) {
					continue
				}
				admitted++
				v, _ := strconv.ParseFloat(s, 64)
				if v < tc.lo || v > tc.hi || tc.loEx && v == tc.lo || tc.hiEx && v == tc.hi {
					t.Fatalf("%s admits %s", tc.schema, s)
				}
			}
		}
		if admitted == 0 {
			t.Fatalf("%s admits nothing", tc.schema)
		}
	}
}

func TestPattern(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{`^abc$`, `("a" "b" "c")`},
		{`^[A-Z][a-z]{2,5}-\d+$`, `([A-Z] [a-z]{2,5} "-" [0-9]+)`},
		{`a|b*|(?:cd)?`, `("a" | "b"* | ("c" "d")?)`},
		{`[^"]+`, `([^"\\\x7F\x00-\x1F]+)`},
		{`x.y`, `("x" [^"\\\x7F\x00-\x1F] "y")`},
		{`\"q\\`, `("\\\"" "q" "\\\\")`},
		{`[a-c\d_-]`, `([a-c0-9_\x2D])`},
		{`[ -~]`, `([ -!#-\[\]-~])`},
		{`(?<year>\d{4})`, `(([0-9]{4}))`},
		{`a{2,}?`, `("a"{2,})`},
	} {
		got, err := patternGBNF(tc.pattern)
		if err != nil || got != tc.want {
			t.Errorf("pattern %q: %s, %v; want %s", tc.pattern, got, err, tc.want)
		}
	}
	for _, p := range []string{`(a`, `a)`, `*a`, `a**`, `[a`, `\`, `a{3,1}`, `a^b`, `[[:alpha:]]`, `\p{L}`, `(?i)a`, `a{1000001}`} {
		if got, err := patternGBNF(p); err == nil {
			t.Errorf("pattern %q: %s, want an error", p, got)
		}
	}
}

func TestKeywords(t *testing.T) {
	for _, tc := range []struct{ schema, rule, want string }{
		{`{"type":"string","minLength":2,"maxLength":5}`, "schema", `"\"" char{2,5} "\"" space`},
		{`{"type":"string","minLength":1}`, "schema", `"\"" char+ "\"" space`},
		{`{"type":"string","format":"date-time"}`, "schema", `date-time-string`},
		{`{"type":"string","format":"uuid"}`, "schema", `uuid`},
		{`{"const":{"a":[1,"x"]}}`, "schema", `("{\"a\":[1,\"x\"]}") space`},
		{`{"enum":["a",1,null,true]}`, "schema", `("\"a\"" | "1" | "null" | "true") space`},
		{`{"type":"string","enum":["a",1]}`, "schema", `("\"a\"") space`},
		{`{"type":["string","null"]}`, "schema", `string | null`},
		{`{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3}`, "schema", `"[" space schema-item ("," space schema-item){0,2} "]" space`},
		{`{"type":"array","items":{"type":"integer"},"minItems":2}`, "schema", `"[" space schema-item ("," space schema-item)+ "]" space`},
		{`{"type":"array","prefixItems":[{"type":"integer"},{"type":"string"}],"minItems":1}`, "schema", `"[" space schema-0 ("," space schema-1)? "]" space`},
		{`{"type":"array","prefixItems":[{"type":"integer"}],"items":{"type":"string"},"maxItems":3}`, "schema", `"[" space (schema-0 ("," space schema-item){0,2})? "]" space`},
		{`{"anyOf":[{"type":"string"},{"type":"integer"}]}`, "schema", `schema-0 | schema-1`},
		{`{"oneOf":[{"type":"string"},{"type":"integer"}]}`, "schema", `schema-0 | schema-1`},
		{`{"allOf":[{"type":"object","properties":{"a":{"type":"string"}}},{"properties":{"b":{"type":"integer"}},"required":["b"]}]}`, "schema", `"{" space schema-b-kv ( "," space ( schema-a-kv ) )? "}" space`},
		{`{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}`, "schema", `"{" space (schema-a-kv )? "}" space`},
		{`{"definitions":{"s":{"type":"string"}},"type":"object","properties":{"a":{"$ref":"#/definitions/s"}},"required":["a"]}`, "schema-a-kv", `"\"a\"" space ":" space schema-ref-s`},
		{`{"minLength":1}`, "schema", `"\"" char+ "\"" space`},
		{`{}`, "schema", `value`},
		{`true`, "schema", `value`},
	} {
		g := mustGrammar(t, tc.schema)
		if got := rule(t, g, tc.rule); got != tc.want {
			t.Errorf("%s: %s ::= %s\nwant %s", tc.schema, tc.rule, got, tc.want)
		}
	}
}

func TestAdditionalPropertyKeys(t *testing.T) {
	g := mustGrammar(t, `{"type":"object","properties":{"ab":{"type":"integer"},"b":{"type":"string"}},"additionalProperties":{"type":"boolean"}}`)
	key := rule(t, g, "schema-additional-k")
	key = strings.TrimSuffix(key, " space")
	key = strings.ReplaceAll(key, "key-char", `[^"\\\x7F\x00-\x1F]`)
	re := gbnfRegexp(key)
	for _, k := range []string{`"ab"`, `"b"`} {
		if re.MatchString(k) {
			t.Errorf("additional key %s matches a property", k)
		}
	}
	for _, k := range []string{`""`, `"a"`, `"abc"`, `"ba"`, `"c"`, `"x y"`} {
		if !re.MatchString(k) {
			t.Errorf("additional key %s refused", k)
		}
	}
}

// Recursive schemas make recursive rules, and self-merging ones an error,
// in bounded time.
func TestRecursion(t *testing.T) {
	g := mustGrammar(t, `{"type":"object","properties":{"kids":{"type":"array","items":{"$ref":"#"}}}}`)
	if !strings.Contains(rule(t, g, "schema-kids"), "schema-ref-root") {
		t.Fatalf("no recursion:\n%s", g)
	}
	var blowup strings.Builder
	blowup.WriteString(`{"$defs":{`)
	for i := range 40 {
		fmt.Fprintf(&blowup, `"d%d":{"allOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]},`, i, i+1, i+1)
	}
	blowup.WriteString(`"d40":{"type":"string"}},"$ref":"#/$defs/d0"}`)
	for _, s := range []string{blowup.String(), `{"allOf":[{"$ref":"#"}]}`, `{"$ref":"#","type":"object"}`, `{"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"}`} {
		if _, err := FromSchema([]byte(s)); err == nil {
			t.Errorf("%s: no error", s)
		}
	}
}

func FuzzFromSchema(f *testing.F) {
	for _, s := range []string{
		`{"type":"object","properties":{"name":{"type":"string","maxLength":10},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["age"]}`,
		`{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`,
		`{"allOf":[{"$ref":"#"}]}`,
		`{"anyOf":[{"type":"string","pattern":"^[a-z]+(-[0-9]{2,3})?$"},{"type":"number","minimum":-1.5,"maximum":8}]}`,
		`{"type":"array","prefixItems":[{"const":1}],"items":{"enum":["a","b"]},"minItems":1,"maxItems":4}`,
		`{"type":"object","additionalProperties":{"type":"string","format":"date"},"properties":{"é":{}}}`,
		`{"oneOf":[{"$ref":"#/oneOf/1"},{"type":"null"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		g, err := FromSchema(schema)
		if err != nil {
			var ue *UnsupportedError
			var se *SchemaError
			if !errors.As(err, &ue) && !errors.As(err, &se) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !strings.HasPrefix(g, "root ::= ") || strings.Contains(g, "\x00") {
			t.Fatalf("grammar:\n%s", g)
		}
	})
}
