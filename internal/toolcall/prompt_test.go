package toolcall

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestGenericPrompt(t *testing.T) {
	tools := []json.RawMessage{
		json.RawMessage(`{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}`),
		json.RawMessage(`{"type":"function","function":{"name":"get_time"}}`),
	}
	p := GenericPrompt(tools, Choice{Mode: "auto"})
	for _, want := range []string{
		"<tools>\n",
		`{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}` + "\n",
		`{"type":"function","function":{"name":"get_time"}}` + "\n</tools>",
		"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
		"otherwise answer the user directly",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("prompt lacks %q:\n%s", want, p)
		}
	}
	if p := GenericPrompt(tools, Choice{Mode: "required"}); !strings.Contains(p, "You must call at least one function") {
		t.Errorf("required: %s", p)
	}
	if p := GenericPrompt(tools, Choice{Mode: "function", Name: "get_time"}); !strings.Contains(p, `You must call the function "get_time"`) {
		t.Errorf("function: %s", p)
	}
	if p := GenericPrompt(tools, Choice{Mode: "none"}); p != "" {
		t.Errorf("none: %q", p)
	}
	if p := GenericPrompt(nil, Choice{Mode: "auto"}); p != "" {
		t.Errorf("no tools: %q", p)
	}
	// An answer written as the prompt asks parses into the call.
	answer := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	r := Parse(Generic, answer, Options{Tools: []Tool{{Name: "get_weather"}}})
	if len(r.Calls) != 1 || r.Calls[0].Arguments != `{"city":"Paris"}` || r.Content != "" {
		t.Errorf("Parse = %+v", r)
	}
}
