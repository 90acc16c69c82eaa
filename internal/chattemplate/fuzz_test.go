package chattemplate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary template text to Parse (which also renders a
// probe) and renders what compiles: neither may panic or hang.
func FuzzParse(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "templates", "*.jinja"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		"", "{{", "{%", "{#", "}}", "{{ x }", "{% if %}", "{% for %}{% endfor %}",
		"{{ (((1))) }}", "{{ [1, {'a': (2,)}] | tojson(indent=2) }}", "{% macro m() %}{% endmacro %}{{ m() }}",
		"{{ 'a' * 3 }}", "{{ range(5) | list }}", "{%- set ns = namespace(a=1) -%}{{ ns.a }}",
		"{{ messages[-1]['content'][::-1] }}", "{{ x.y.z() }}", "{{ raise_exception('x') }}",
		"{% for m in messages if m.role != 'x' %}{{ loop.index }}{% else %}e{% endfor %}",
		"{{ '\\u00e9' | upper }}{{ 1 / 0 }}{{ 1 // 0 }}{{ 1 % 0 }}", "{% filter upper %}x{% endfilter %}",
		"{% call m() %}x{% endcall %}", "{{ tools | map(attribute='function') | list | tojson }}",
	} {
		f.Add(s)
	}
	in := Input{
		Messages: []Message{{Role: "system", Content: "s"}, {Role: "user", Content: "u"}},
		Now:      goldenNow,
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			return
		}
		out, err := tpl.Render(in)
		if errors.Is(err, ErrTimeout) || errors.Is(err, ErrBroken) {
			t.Fatalf("render of %q hung", src)
		}
		if err == nil && len(out) > MaxOutputLen {
			t.Fatalf("output of %d bytes", len(out))
		}
	})
}

// FuzzRender renders real templates with arbitrary conversations: no panic,
// no hang, and a user's text reaches the prompt whenever the render
// succeeds on a template that prints every user message.
func FuzzRender(f *testing.F) {
	templates := []string{"Qwen-Qwen2.5-7B-Instruct", "meta-llama-Llama-3.1-8B-Instruct", "Qwen-Qwen3-8B", "mistralai-Mistral-7B-Instruct-v0.3"}
	parsed := make([]*Template, len(templates))
	for i, name := range templates {
		tpl, err := Parse(readTemplate(f, name))
		if err != nil {
			f.Fatal(err)
		}
		parsed[i] = tpl
	}
	f.Add(uint8(0), "user\x00hello\x00assistant\x00hi\x00user\x00bye", `{"a": 1}`, `{"type":"function","function":{"name":"f"}}`, true)
	f.Add(uint8(1), "system\x00s\x00user\x00q\x00tool\x00{\"x\": 1}", `[1, 2`, `{"type":"function","function":{"name":"f","parameters":{}}}`, false)
	f.Add(uint8(2), "user\x00<think>x</think>\x00assistant\x00<think>r</think>a", `"str"`, ``, true)
	f.Add(uint8(3), "user\x00\u00e9\U0001F600\x00assistant\x00\x00user\x00\"'{{ }}", `{"nested": {"deep": [null, true, 1.5e300]}}`, `{}`, true)
	f.Fuzz(func(t *testing.T, which uint8, script, args, tool string, genPrompt bool) {
		tpl := parsed[int(which)%len(parsed)]
		parts := strings.Split(script, "\x00")
		var in Input
		for i := 0; i+1 < len(parts); i += 2 {
			m := Message{Role: parts[i], Content: parts[i+1]}
			if m.Role == "assistant" && i%4 == 2 {
				m.ToolCalls = []ToolCall{{ID: "abc123XYZ", Function: FunctionCall{Name: "f", Arguments: args}}}
			}
			if m.Role == "tool" {
				m.ToolCallID = "abc123XYZ"
			}
			in.Messages = append(in.Messages, m)
		}
		if tool != "" {
			in.Tools = []json.RawMessage{json.RawMessage(tool)}
		}
		in.AddGenerationPrompt = genPrompt
		in.Now = goldenNow
		out, err := tpl.Render(in)
		if errors.Is(err, ErrTimeout) || errors.Is(err, ErrBroken) {
			t.Fatalf("render hung: %v", err)
		}
		if err != nil || which%4 != 0 {
			return
		}
		// Qwen2.5 prints every user message as it is.
		for _, m := range in.Messages {
			if m.Role == "user" && !strings.Contains(out, m.Content) {
				t.Fatalf("user content %q missing from %q", m.Content, out)
			}
		}
	})
}
