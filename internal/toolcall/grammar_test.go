package toolcall

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/grammar"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var grammarTools = []Tool{
	weatherTools[0],
	weatherTools[1],
	{Name: "book", Parameters: json.RawMessage(`{"type":"object","properties":{
		"guests":{"type":"integer","minimum":1,"maximum":8},
		"when":{"type":"string","enum":["today","tomorrow"]},
		"notes":{"type":"array","items":{"type":"string"},"maxItems":2}},
		"required":["guests","when"],"additionalProperties":false}`)},
	{Name: "ping"}, // no parameters
}

func mustParseGBNF(t *testing.T, f Format, choice Choice) *gbnf {
	t.Helper()
	src, err := Grammar(f, grammarTools, choice)
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseGBNF(src)
	if err != nil {
		t.Fatalf("%v in\n%s", err, src)
	}
	return g
}

func TestGrammarAcceptsAndRejects(t *testing.T) {
	weather := `{"name": "get_weather", "arguments": {"city": "Paris"}}`
	book := `{"name": "book", "arguments": {"guests": 2, "when": "today"}}`
	cases := []struct {
		f      Format
		choice Choice
		accept []string
		reject []string
	}{
		{Hermes, Choice{Mode: "required"},
			[]string{"<tool_call>\n" + weather + "\n</tool_call>", "<tool_call>\n" + weather + "\n</tool_call>\n<tool_call>\n" + book + "\n</tool_call>"},
			[]string{"Hello", weather, "<tool_call>\n" + `{"name": "get_weather", "arguments": {}}` + "\n</tool_call>", "<tool_call>\n" + `{"name": "nope", "arguments": {}}` + "\n</tool_call>"}},
		{Generic, Choice{Mode: "function", Name: "book"},
			[]string{"<tool_call>\n" + book + "\n</tool_call>"},
			[]string{"<tool_call>\n" + weather + "\n</tool_call>", "<tool_call>\n" + book + "\n</tool_call>\n<tool_call>\n" + book + "\n</tool_call>",
				"<tool_call>\n" + `{"name": "book", "arguments": {"guests": 9, "when": "today"}}` + "\n</tool_call>"}},
		{Llama3, Choice{Mode: "required"},
			[]string{`{"name": "get_weather", "parameters": {"city": "Paris"}}`, `{"name": "ping", "parameters": {}}; {"name": "get_time", "parameters": {}}`},
			[]string{weather, "It is sunny."}},
		{Mistral, Choice{Mode: "required"},
			[]string{`[TOOL_CALLS][` + weather + `]`, `[TOOL_CALLS] [` + weather + `, ` + book + `]`, `[` + weather + `]`},
			[]string{`[TOOL_CALLS][]`, weather}},
		{Mistral, Choice{Mode: "function", Name: "get_weather"},
			[]string{`[TOOL_CALLS][` + weather + `]`},
			[]string{`[TOOL_CALLS][` + weather + `, ` + weather + `]`}},
	}
	for _, tc := range cases {
		g := mustParseGBNF(t, tc.f, tc.choice)
		for _, text := range tc.accept {
			if !g.accepts(text) {
				t.Errorf("%s %v: grammar rejects %q", tc.f, tc.choice, text)
			}
			if r := Parse(tc.f, text, Options{Tools: grammarTools}); len(r.Calls) == 0 || r.Content != "" {
				t.Errorf("%s: Parse(%q) = %+v", tc.f, text, r)
			}
		}
		for _, text := range tc.reject {
			if g.accepts(text) {
				t.Errorf("%s %v: grammar accepts %q", tc.f, tc.choice, text)
			}
		}
	}
}

// What a model can write under the grammar is calls that Parse reads back,
// with arguments valid against the tool's schema.
func TestGrammarSamplesParse(t *testing.T) {
	schemas := map[string]*jsonschema.Schema{}
	for _, tool := range grammarTools {
		params := string(tool.Parameters)
		if params == "" {
			params = `{"type":"object"}`
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(params))
		if err != nil {
			t.Fatal(err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource("s.json", doc); err != nil {
			t.Fatal(err)
		}
		if schemas[tool.Name], err = c.Compile("s.json"); err != nil {
			t.Fatal(err)
		}
	}
	choices := []Choice{{Mode: "required"}, {Mode: "function", Name: "book"}, {Mode: "function", Name: "ping"}}
	for _, f := range []Format{Generic, Hermes, Llama3, Mistral} {
		for _, choice := range choices {
			g := mustParseGBNF(t, f, choice)
			r := rand.New(rand.NewPCG(1, uint64(len(f))))
			for range 200 {
				text := g.sample(r)
				if !g.accepts(text) {
					t.Fatalf("%s %v: sample %q not accepted", f, choice, text)
				}
				res := Parse(f, text, Options{Tools: grammarTools})
				if len(res.Calls) == 0 || res.Content != "" || res.Reasoning != "" {
					t.Fatalf("%s %v: Parse(%q) = %+v", f, choice, text, res)
				}
				for _, c := range res.Calls {
					if choice.Mode == "function" && c.Name != choice.Name {
						t.Fatalf("%s: call to %s under %v", f, c.Name, choice)
					}
					v, err := jsonschema.UnmarshalJSON(strings.NewReader(c.Arguments))
					if err != nil {
						t.Fatal(err)
					}
					if err := schemas[c.Name].Validate(v); err != nil {
						t.Fatalf("%s: %s arguments %s: %v", f, c.Name, c.Arguments, err)
					}
				}
			}
		}
	}
}

func TestGrammarChoices(t *testing.T) {
	for _, mode := range []string{"", "none", "auto"} {
		if g, err := Grammar(Hermes, grammarTools, Choice{Mode: mode}); g != "" || err != nil {
			t.Errorf("mode %q: %q, %v", mode, g, err)
		}
	}
	var unknown *UnknownToolError
	if _, err := Grammar(Hermes, grammarTools, Choice{Mode: "function", Name: "nope"}); !errors.As(err, &unknown) || unknown.Name != "nope" {
		t.Errorf("unknown function: %v", err)
	}
	if _, err := Grammar(Hermes, nil, Choice{Mode: "required"}); err == nil {
		t.Error("required with no tools: no error")
	}
	bad := []Tool{{Name: "x", Parameters: json.RawMessage(`{"type":"object","properties":{"a":{"type":"string","contentMediaType":"image/png"}}}`)}}
	var unsupported *grammar.UnsupportedError
	_, err := Grammar(Hermes, bad, Choice{Mode: "required"})
	if !errors.As(err, &unsupported) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("unsupported keyword: %v", err)
	}
}
