package chattemplate

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ardanlabs/jinja"
)

func render(t *testing.T, src string, in Input) (string, error) {
	t.Helper()
	tpl, err := Parse(src)
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	return tpl.Render(in)
}

func mustRender(t *testing.T, src string, in Input) string {
	t.Helper()
	out, err := render(t, src, in)
	if err != nil {
		t.Fatalf("Render(%q): %v", src, err)
	}
	return out
}

// The expected strings are Python's json.dumps output for the same values.
func TestToJSON(t *testing.T) {
	const obj = `{"b":[1,{"c":"x"}],"a":{},"e":[]}`
	for _, tc := range []struct{ value, call, want string }{
		{`{"b":[1,{"c":"x"}],"a":{},"e":[],"f":1.0,"g":1e16,"h":1.5e-5,"i":0.0001,"j":123456789.125,"k":-0.0,"l":null,"m":true}`, "tojson",
			`{"b": [1, {"c": "x"}], "a": {}, "e": [], "f": 1.0, "g": 1e+16, "h": 1.5e-05, "i": 0.0001, "j": 123456789.125, "k": -0.0, "l": null, "m": true}`},
		{`{"s":"é \u2028 \u007f \u0001 \"q\" \\ / <&> \ud83d\ude00 \t\n"}`, "tojson",
			"{\"s\": \"é \u2028 \x7f \\u0001 \\\"q\\\" \\\\ / <&> \U0001F600 \\t\\n\"}"},
		{`{"s":"é \u2028 \u007f \u0001 \ud83d\ude00"}`, "tojson(ensure_ascii=true)",
			`{"s": "\u00e9 \u2028 \u007f \u0001 \ud83d\ude00"}`},
		{obj, "tojson(indent=2)", "{\n  \"b\": [\n    1,\n    {\n      \"c\": \"x\"\n    }\n  ],\n  \"a\": {},\n  \"e\": []\n}"},
		{`{"b":[1,2],"a":"x"}`, "tojson(indent=2, sort_keys=true)", "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}"},
		{`{"b":[1,2],"a":"x"}`, "tojson(separators=[',', ':'])", `{"b":[1,2],"a":"x"}`},
		{`[1,[2,[]]]`, "tojson(indent='\\t')", "[\n\t1,\n\t[\n\t\t2,\n\t\t[]\n\t]\n]"},
		{`{"a":[1]}`, "tojson(indent=0)", "{\n\"a\": [\n1\n]\n}"},
		{`{"a":[1]}`, "tojson(4)", "{\n    \"a\": [\n        1\n    ]\n}"},
	} {
		tpl, err := Parse("{{ tools[0] | " + tc.call + " }}")
		if err != nil {
			t.Fatal(err)
		}
		got, err := tpl.Render(Input{Tools: []json.RawMessage{json.RawMessage(tc.value)}})
		if err != nil {
			t.Fatalf("%s | %s: %v", tc.value, tc.call, err)
		}
		if got != tc.want {
			t.Errorf("%s | %s\n got %q\nwant %q", tc.value, tc.call, got, tc.want)
		}
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1e22: "1e+22", 1e-7: "1e-07", 5e-324: "5e-324", 1.7976931348623157e308: "1.7976931348623157e+308",
		0.1: "0.1", 100: "100.0", 1e15: "1000000000000000.0", 123e-20: "1.23e-18", -2.5: "-2.5",
	} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestPrepare(t *testing.T) {
	for src, want := range map[string]string{
		"{{ x|tojson }}":                          "{{ x|" + tojsonName + " }}",
		"{{- x | tojson(indent=4) -}}":            "{{ x | " + tojsonName + "(indent=4) }}",
		"{{ '|tojson' }}|tojson{# |tojson #}":     "{{ '|tojson' }}|tojson",
		"{% set s = x|tojson %}{{ x|tojsonish }}": "{% set s = x|" + tojsonName + " %}{{ x|tojsonish }}",
		"a { b }{{ \"}}|tojson\" | tojson }}c {":  "a { b }{{ \"}}|tojson\" | " + tojsonName + " }}c {",
	} {
		got, err := prepare(src)
		if err != nil || got != want {
			t.Errorf("prepare(%q) = %q, %v; want %q", src, got, err, want)
		}
	}
	for _, src := range []string{
		"{{ x ",
		"{# x",
		strings.Repeat("{% if x %}", MaxNesting+1),
		"{{ " + strings.Repeat("(", MaxNesting+1) + " }}",
	} {
		if _, err := Parse(src); err == nil {
			t.Errorf("Parse(%.40q...) succeeded, want an error", src)
		}
	}
}

// Whitespace control as Python's Jinja2 does it with trim_blocks and
// lstrip_blocks; the outputs are Jinja2's.
func TestWhitespace(t *testing.T) {
	for _, tc := range [][2]string{
		{"{% for m in [1,2] %}{{ m }}\n{% endfor %}", "1\n2\n"},
		{"{% for m in [1,2] %}{{ m }}\nx{% endfor %}", "1\nx2\nx"},
		{"{% for m in [1,2] %}{{ m }}\n  {% endfor %}|", "1\n2\n|"},
		{"a\n{% if true %}b{% endif %}", "a\nb"},
		{"a\n    {% if true %}\n    b\n    {% endif %}\nc", "a\n    b\nc"},
		{"  {% if true %}x{% endif %}", "x"},
		{"{{ 'a' }}  {% if true %}x{% endif %}", "a  x"},
		{"a   {{- 'b' -}}   c  {%- if true -%}  d  {%- endif %}", "abcd"},
		{"{% if true %}\n\nx\n{% endif %}\n", "\nx\n"},
		{"{% if true +%}\nx\n    {%+ endif %}y", "\nx\n    y"},
		{"x {# c #}\ny\n  {# c #}\nz", "x y\nz"},
		{"{% if true %}\r\nx\r\n{% endif %}\r\ny\r\n", "x\ny"},
		{"a\t \n\t{% if true %}  \t\n{% endif %}b", "a\t \n  \t\nb"},
		{"{{ 'x' }}\n", "x"},
		{"{%- if true -%}\n  \n  {{ 'v' }}  \n  {%- endif -%}\n  end", "vend"},
		{"{% set x %}\n  hi  \n{% endset %}[{{ x }}]", "[  hi  \n]"},
		{"{% macro m(a) %}\n  <{{ a }}>\n{% endmacro %}{{ m(1) }}{{ m(2) }}", "  <1>\n  <2>\n"},
		{"{{ '{' }}%}{# {{ #}{{ \"}}\" }}", "{%}}}"},
	} {
		if got, err := render(t, tc[0], Input{}); err != nil || got != tc[1] {
			t.Errorf("%q = %q, %v; want %q", tc[0], got, err, tc[1])
		}
	}
}

func TestHelpers(t *testing.T) {
	now := func() time.Time { return time.Date(2024, 7, 6, 15, 4, 5, 0, time.UTC) }
	for src, want := range map[string]string{
		`{{ strftime_now("%d %b %Y") }}`:                    "06 Jul 2024",
		`{{ strftime_now("%Y-%m-%d %H:%M:%S %A %B %-d") }}`: "2024-07-06 15:04:05 Saturday July 6",
		`{{ strftime_now("%I %p %j %% %Q") }}`:              "03 PM 188 % %Q",
		`{% for i in range(3) %}{{ i }}{% endfor %}`:        "012",
		`{{ range(1, 8, 3) | join(",") }}`:                  "1,4,7",
		`{{ range(3, -1, -1) | join(",") }}`:                "3,2,1,0",
		`{{ range(0, 3, -1) | length }}`:                    "0",
		`{{ bos_token }}|{{ eos_token }}`:                   "<s>|</s>",
		`{{ reasoning_effort }}/{{ enable_thinking }}`:      "high/False",
		`{{ reasoning_effort is defined }}`:                 "True",
		`{{ tools is none }}`:                               "True",
	} {
		off := false
		got, err := render(t, src, Input{BOS: "<s>", EOS: "</s>", Now: now, ReasoningEffort: "high", EnableThinking: &off})
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
	got := mustRender(t, `{{ reasoning_effort is defined }}{{ enable_thinking is defined }}`, Input{})
	if got != "FalseFalse" {
		t.Errorf("unset reasoning switches: %q", got)
	}
	if _, err := Parse(`{{ range(100001) | length }}`); err == nil {
		t.Error("range beyond the sandbox limit succeeded")
	}
	st := &renderState{rangeLeft: 10}
	if _, err := st.rangeFunc([]jinja.Value{jinja.NewInt(6)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.rangeFunc([]jinja.Value{jinja.NewInt(5)}, nil); err == nil {
		t.Error("range beyond the budget of a render succeeded")
	}
	st.stopped.Store(true)
	if _, err := st.helper("f", raiseException).AsCallable().Fn(nil, nil); !errors.Is(err, errStopped) {
		t.Errorf("a helper of an abandoned render: %v", err)
	}
}

func TestMessages(t *testing.T) {
	in := Input{Messages: []Message{
		{Role: "system", Content: "s"},
		{Role: "assistant", ToolCalls: []ToolCall{
			{ID: "c1", Function: FunctionCall{Name: "f", Arguments: `{"b": 2, "a": [1.0, "x"]}`}},
			{Function: FunctionCall{Name: "g", Arguments: `{"broken": `}},
		}},
		{Role: "tool", ToolCallID: "c1", Name: "f", Content: "ok"},
		{Role: "assistant", Content: "hi", ReasoningContent: "hmm"},
	}}
	// This template prints arguments with tojson, so they go in as objects.
	const src = `{% for m in messages %}{{ m | tojson }}
{% endfor %}{{ 'tool_calls' in messages[0] }} {{ messages[1].content is none }} {{ messages[1].tool_calls[0].function.arguments is mapping }} {{ messages[1].tool_calls[1].function.arguments is string }}`
	want := `{"role": "system", "content": "s"}
{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"b": 2, "a": [1.0, "x"]}}}, {"type": "function", "function": {"name": "g", "arguments": "{\"broken\": "}}]}
{"role": "tool", "content": "ok", "tool_call_id": "c1", "name": "f"}
{"role": "assistant", "content": "hi", "reasoning_content": "hmm"}
False True True True`
	if got := mustRender(t, src, in); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := render(t, "x", Input{Tools: []json.RawMessage{json.RawMessage(`{"a":`)}}); err == nil {
		t.Error("a tool that is not JSON rendered")
	}
}

func TestErrors(t *testing.T) {
	_, err := render(t, `{{ raise_exception("nope: " ~ messages | length) }}`, Input{})
	var re *RaiseError
	if !errors.As(err, &re) || re.Message != "nope: 0" {
		t.Errorf("raise_exception: %v", err)
	}
	_, err = render(t, `{% macro m() %}{{ raise_exception("deep") }}{% endmacro %}{{ m() }}`, Input{})
	if !errors.As(err, &re) || re.Message != "deep" {
		t.Errorf("raise_exception in a macro: %v", err)
	}
	if _, err := Parse(`{{ x | no_such_filter }}`); err == nil {
		t.Error("a template with an unknown filter parsed")
	}
	tpl, err := Parse(`{% if messages | length > 1 %}{{ x | no_such_filter }}{% endif %}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(Input{Messages: make([]Message, 2)}); err == nil || errors.As(err, &re) {
		t.Errorf("unknown filter: %v", err)
	}
	if _, err := Parse(`{% if %}`); err == nil {
		t.Error("a broken template parsed")
	}
}

// A render that runs too long fails, and the template is not used again.
func TestTimeout(t *testing.T) {
	// Slow only for two messages, so that the probe render at Parse is
	// quick; the abandoned render ends on its own a second or so later.
	tpl, err := Parse(`{% if messages | length == 2 %}{% for i in range(700) %}{% for j in range(700) %}{% endfor %}{% endfor %}{% endif %}`)
	if err != nil {
		t.Fatal(err)
	}
	tpl.timeout = time.Millisecond
	two := Input{Messages: []Message{{Role: "user"}, {Role: "user"}}}
	if _, err := tpl.Render(two); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if _, err := tpl.Render(Input{}); !errors.Is(err, ErrBroken) {
		t.Fatalf("after a timeout: %v, want ErrBroken", err)
	}
}

func TestOutputLimit(t *testing.T) {
	tpl, err := Parse(`{% for i in range(17) %}{{ messages[0].content }}{% endfor %}`)
	if err != nil {
		t.Fatal(err)
	}
	tpl.maxOut = 17 << 10
	in := Input{Messages: []Message{{Role: "user", Content: strings.Repeat("x", 1<<10)}}}
	if out, err := tpl.Render(in); err != nil || len(out) != 17<<10 {
		t.Fatalf("%d bytes, %v", len(out), err)
	}
	in.Messages[0].Content += "x"
	if _, err = tpl.Render(in); !errors.Is(err, ErrTooLong) {
		t.Errorf("got %v, want ErrTooLong", err)
	}
}

func TestPromptOpensThink(t *testing.T) {
	for prompt, want := range map[string]bool{
		"<｜Assistant｜><think>\n":                         true,
		"<think>\nold\n</think>\n\nx<|im_start|>":        false,
		"<|im_start|>assistant\n<think>\n\n</think>\n\n": false,
		"no tags": false,
	} {
		if got := PromptOpensThink(prompt); got != want {
			t.Errorf("PromptOpensThink(%q) = %v", prompt, got)
		}
	}
}
