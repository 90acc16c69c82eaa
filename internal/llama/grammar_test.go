package llama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/grammar"
	"github.com/rbee/rbee/internal/testmodel"
)

// loadTiny loads a random-weight model of testmodel.Tiny's shape, whose
// vocabulary has a token per printable ASCII character and per byte.
func loadTiny(t *testing.T, ctx int) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := testmodel.WriteRandom(path, testmodel.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, Options{Threads: 1, CtxSize: ctx})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// charTokens spells text one token per byte, as the grammar sees it.
func charTokens(text string) []engine.Token {
	var toks []engine.Token
	for i := 0; i < len(text); i++ {
		if id := testmodel.CharToken(rune(text[i])); id >= 0 && text[i] < 0x80 {
			toks = append(toks, engine.Token(id))
		} else {
			toks = append(toks, engine.Token(testmodel.ByteToken(text[i])))
		}
	}
	return toks
}

// sampleRun generates until the end of generation or max tokens, reporting
// whether it ended.
func sampleRun(t *testing.T, m *Model, prompt string, s engine.Sampling, max int) (toks []engine.Token, text string, ended bool) {
	t.Helper()
	p, err := m.Tokenize(prompt)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := m.NewSequence(s)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for range max {
		tok := seq.Sample()
		if m.IsEOG(tok) {
			return toks, string(out), true
		}
		piece, err := m.Piece(tok)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		out = append(out, piece...)
		if err := seq.Decode(tok); err != nil {
			t.Fatal(err)
		}
	}
	return toks, string(out), false
}

// llama.cpp's own grammar matcher accepts the documents the schema
// accepts and refuses the others.
func TestSchemaGrammarsInLlama(t *testing.T) {
	m := loadTiny(t, 256)
	for _, tc := range []struct {
		schema  string
		ok, bad []string
	}{
		{`{"type":"object","properties":{"name":{"type":"string","maxLength":4},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name"]}`,
			[]string{`{"name":"abcd"}`, `{"name":"","age":150}`, "{\n  \"name\": \"x\",\n  \"age\": 7\n}", `{ "name" : "a\"b" , "age" : 0 } `},
			[]string{`{"age":3}`, `{"name":"abcde"}`, `{"name":"a","age":151}`, `{"name":"a","age":-1}`, `{"age":1,"name":"a"}`, `{"name":"a","x":1}`, `{"name":"a"}` + strings.Repeat(" ", 30)}},
		{`{"enum":["red","green",3]}`, []string{`"red"`, `3`}, []string{`"blue"`, `"Red"`, `4`}},
		{`{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":2}`, []string{`[true]`, `[true, false]`}, []string{`[]`, `[true,true,true]`, `[1]`}},
		{`{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"}`, []string{`"AB-123"`}, []string{`"ab-123"`, `"AB-12"`, `"AB-1234"`}},
		{`{"type":"string","format":"date-time"}`, []string{`"2024-02-28T13:45:00Z"`, `"1999-12-01T00:00:00.123+02:00"`}, []string{`"2024-13-01T00:00:00Z"`, `"2024-02-28"`}},
		{`{"type":"string","format":"uuid"}`, []string{`"123e4567-e89b-12d3-a456-426614174000"`}, []string{`"123e4567"`}},
		{`{"type":"number","minimum":-2.5,"maximum":10}`, []string{`-2`, `9.75`, `10`, `-1.5`}, []string{`11`, `-3`, `10.5`, `1e3`}},
		{`{"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"next":{"$ref":"#/$defs/n"}},"required":["v"],"additionalProperties":false}},"$ref":"#/$defs/n"}`,
			[]string{`{"v":1,"next":{"v":2,"next":{"v":3}}}`}, []string{`{"v":1,"next":{}}`}},
		{`{"anyOf":[{"type":"null"},{"type":"object","properties":{"k":{"const":"x"}},"required":["k"]}]}`, []string{`null`, `{"k":"x"}`}, []string{`{"k":"y"}`, `{}`}},
		{`{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}}`, []string{`{"a":1,"b":"x"}`, `{"zz":"y","q":"r"}`}, []string{`{"a":"x"}`, `{"b":1}`}},
	} {
		g, err := grammar.FromSchema([]byte(tc.schema))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range tc.ok {
			if ok, err := grammarAccepts(m, g, charTokens(doc)); err != nil || !ok {
				t.Errorf("%s refuses %q (%v)\n%s", tc.schema, doc, err, g)
			}
		}
		for _, doc := range tc.bad {
			if ok, err := grammarAccepts(m, g, charTokens(doc)); err != nil || ok {
				t.Errorf("%s accepts %q (%v)", tc.schema, doc, err)
			}
		}
	}
	// Every construct the converter writes parses in llama.cpp.
	for _, schema := range []string{
		`{"type":"string","pattern":"^(?:[a-c\\d_-]|\\.|x{2,}?)+[^\"\\\\]*\\s\\w\\D\\W\\S.\\u00e9\\x41$"}`,
		`{"type":"object","properties":{"é\"x":{"type":"string","format":"email"},"h":{"format":"hostname"},"ip":{"format":"ipv4"},"t":{"format":"time"}},"additionalProperties":true}`,
		`{"type":"array","prefixItems":[{"const":[1,{"a":"b\n"}]},{"type":"number","minimum":-1000.5,"exclusiveMaximum":-3}],"items":{"type":["integer","null"],"maximum":-12345678},"minItems":1,"maxItems":5}`,
		`{"oneOf":[{"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"integer","exclusiveMinimum":0}},"required":["kind"]},{"type":"object","properties":{"kind":{"const":"b"}},"required":["kind","y"]}]}`,
		`{"allOf":[{"$ref":"#/definitions/base"},{"properties":{"extra":{"type":"boolean"}}}],"definitions":{"base":{"type":"object","properties":{"id":{"type":"string","format":"uuid"}},"required":["id"]}}}`,
		`{}`,
	} {
		g, err := grammar.FromSchema([]byte(schema))
		if err != nil {
			t.Fatalf("%s: %v", schema, err)
		}
		if _, err := grammarAccepts(m, g, nil); err != nil {
			t.Errorf("%s: llama.cpp refuses the grammar:\n%s", schema, g)
		}
	}
	if ok, err := grammarAccepts(m, grammar.JSONObject(), charTokens(`{"a":[1,{"b":null}],"c":"d"}`)); err != nil || !ok {
		t.Errorf("json_object grammar refuses an object (%v)", err)
	}
	if ok, _ := grammarAccepts(m, grammar.JSONObject(), charTokens(`[1]`)); ok {
		t.Error("json_object grammar accepts an array")
	}
}

const testSchema = `{
	"type": "object",
	"properties": {
		"name": {"type": "string", "minLength": 1, "maxLength": 8},
		"kind": {"enum": ["cat", "dog", "bird"]},
		"age": {"type": "integer", "minimum": 0, "maximum": 30},
		"tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
		"owner": {
			"type": "object",
			"properties": {
				"id": {"type": "integer", "minimum": -5, "maximum": 5},
				"ok": {"type": "boolean"}
			},
			"required": ["id"],
			"additionalProperties": false
		},
		"score": {"type": "number", "minimum": 0, "maximum": 10}
	},
	"required": ["name", "kind", "owner"],
	"additionalProperties": false
}`

const formatSchema = `{
	"type": "object",
	"properties": {
		"date": {"type": "string", "format": "date"},
		"time": {"type": "string", "format": "time"},
		"when": {"type": "string", "format": "date-time"},
		"id": {"type": "string", "format": "uuid"},
		"mail": {"type": "string", "format": "email"},
		"ip": {"type": "string", "format": "ipv4"},
		"host": {"type": "string", "format": "hostname"},
		"code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}(x|yz)?$"},
		"ratio": {"type": "number", "exclusiveMinimum": -1, "maximum": 1.5},
		"pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "minItems": 2, "items": false},
		"either": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/small"}]}
	},
	"required": ["date", "time", "when", "id", "mail", "ip", "host", "code", "ratio", "pair", "either"],
	"additionalProperties": false,
	"$defs": {"small": {"type": "integer", "minimum": 10, "maximum": 12}}
}`

// compile compiles a schema with format assertions on.
func compile(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// Formats, patterns, bounded numbers, tuples and references hold too,
// with the validator asserting formats.
func TestFormatOutputValidates(t *testing.T) {
	m := loadTiny(t, 2048)
	g, err := grammar.FromSchema([]byte(formatSchema))
	if err != nil {
		t.Fatal(err)
	}
	sch := compile(t, formatSchema)
	for seed := range uint32(30) {
		_, text, ended := sampleRun(t, m, "Answer:", engine.Sampling{Temperature: 1, Seed: seed, Grammar: g}, 2000)
		if !ended {
			t.Fatalf("seed %d: no end within 2000 tokens: %q", seed, text)
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatalf("seed %d: %q is not JSON: %v", seed, text, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Fatalf("seed %d: %q is invalid: %v", seed, text, err)
		}
	}
}

// A random-weight model sampled at temperature 1 under a schema's grammar
// writes a valid document every time, and stops.
func TestSchemaOutputValidates(t *testing.T) {
	m := loadTiny(t, 2048)
	g, err := grammar.FromSchema([]byte(testSchema))
	if err != nil {
		t.Fatal(err)
	}
	sch := compile(t, testSchema)
	longest := 0
	for seed := range uint32(100) {
		_, text, ended := sampleRun(t, m, "Answer:", engine.Sampling{Temperature: 1, Seed: seed, Grammar: g}, 2000)
		if !ended {
			t.Fatalf("seed %d: no end within 2000 tokens: %q", seed, text)
		}
		longest = max(longest, len(text))
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			t.Fatalf("seed %d: %q is not JSON: %v", seed, text, err)
		}
		if err := sch.Validate(v); err != nil {
			t.Fatalf("seed %d: %q is invalid: %v", seed, text, err)
		}
	}
	t.Logf("longest output: %d bytes", longest)
}

func TestJSONObjectOutput(t *testing.T) {
	m := loadTiny(t, 2048)
	ended := 0
	for seed := range uint32(20) {
		_, text, ok := sampleRun(t, m, "Answer:", engine.Sampling{Temperature: 1, Seed: seed, Grammar: grammar.JSONObject()}, 1500)
		if !ok {
			continue // nesting is unbounded in json_object: a cap may cut it
		}
		ended++
		var v map[string]any
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil || dec.More() {
			t.Fatalf("seed %d: %q is not a JSON object: %v", seed, text, err)
		}
	}
	if ended < 10 {
		t.Fatalf("only %d of 20 runs ended", ended)
	}
}

// Seeded and greedy generation under a grammar is the same every time.
func TestGrammarDeterministic(t *testing.T) {
	m := loadTiny(t, 2048)
	g, _ := grammar.FromSchema([]byte(testSchema))
	for _, s := range []engine.Sampling{{Grammar: g}, {Temperature: 1, Seed: 42, Grammar: g}} {
		_, a, _ := sampleRun(t, m, "Answer:", s, 2000)
		_, b, _ := sampleRun(t, m, "Answer:", s, 2000)
		if a != b {
			t.Fatalf("%+v: %q then %q", s, a, b)
		}
	}
}

func TestInvalidGrammar(t *testing.T) {
	m := loadTiny(t, 256)
	for _, g := range []string{`root ::= (`, `start ::= "a"`, `root ::= undefined-rule`} {
		_, err := m.NewSequence(engine.Sampling{Grammar: g})
		var se *engine.SamplingError
		if !errors.As(err, &se) || se.Field != "grammar" {
			t.Errorf("%q: %v, want a grammar SamplingError", g, err)
		}
	}
	// The slot of a refused sequence is free again.
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	seq.Close()
}

// A grammar that needs a character the vocabulary cannot write ends the
// generation instead of breaking the grammar (which aborts llama.cpp).
func TestGrammarWithoutWay(t *testing.T) {
	m := loadTiny(t, 256)
	_, text, ended := sampleRun(t, m, "Answer:", engine.Sampling{Grammar: `root ::= "ab" [\x00]`}, 50)
	if !ended || !bytes.Equal([]byte(text), []byte("ab")) {
		t.Fatalf("%q, ended %v", text, ended)
	}
}

// Once the grammar is complete only the end of generation is allowed.
func TestGrammarEnds(t *testing.T) {
	m := loadTiny(t, 256)
	for seed := range uint32(5) {
		_, text, ended := sampleRun(t, m, "Answer:", engine.Sampling{Temperature: 1, Seed: seed, Grammar: `root ::= "ab" [0-9]?`}, 50)
		if !ended || (text != "ab" && (len(text) != 3 || text[:2] != "ab" || text[2] < '0' || text[2] > '9')) {
			t.Fatalf("seed %d: %q, ended %v", seed, text, ended)
		}
	}
}
