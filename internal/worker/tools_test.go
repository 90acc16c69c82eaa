//go:build cgo

package worker

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

// What the scripted model answers; testmodel.ReplyMarker(i) in the prompt
// selects reply i.
var toolReplies = []string{
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
	"It is sunny in Paris.",
	"Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\"}}\n</tool_call>",
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
	"<think>\nI should say hi.\n</think>\n\nHello!",
}

const weatherTools = `[{"type":"function","function":{"name":"get_weather","description":"Weather of a city",
	"parameters":{"type":"object","properties":{"city":{"type":"string","maxLength":12}},"required":["city"],"additionalProperties":false}}},
	{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"tz":{"type":"string","maxLength":5}},"required":["tz"]}}}]`

func scriptedWorker(t *testing.T, template string) *testWorker {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scripted.gguf")
	var opt testmodel.ScriptOptions
	if template != "" {
		opt.ExtraKVs = []gguf.WriteKV{{Key: "tokenizer.chat_template", Value: template}}
	}
	if err := testmodel.WriteScripted(path, toolReplies, opt); err != nil {
		t.Fatal(err)
	}
	m, err := llama.Load(path, llama.Options{Threads: 1, CtxSize: 4096, Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return start(t, m, nil)
}

// answer is what a chat request's events add up to.
type answer struct {
	content, reasoning string
	calls              []wire.ToolCall
	end                wire.Event
	logprobs           int
}

func (w *testWorker) ask(t *testing.T, body string) answer {
	t.Helper()
	_, events := w.stream(t, w.submit(t, body))
	var a answer
	for _, e := range events {
		switch e.Type {
		case wire.TypeToken:
			a.content += e.T
			a.reasoning += e.R
			a.logprobs += len(e.Logprobs)
			if c := e.Call; c != nil {
				if c.ID != "" {
					a.calls = append(a.calls, wire.ToolCall{ID: c.ID, Type: "function", Function: wire.ToolCallFunction{Name: c.Name}})
				}
				if c.Index != len(a.calls)-1 {
					t.Fatalf("call delta %+v after %d calls", c, len(a.calls))
				}
				a.calls[c.Index].Function.Arguments += c.Arguments
			}
		case wire.TypeEnd, wire.TypeError:
			a.end = e
		}
	}
	return a
}

func chatBody(msgs []wire.ChatMessage, extra string) string {
	b, _ := json.Marshal(msgs)
	return fmt.Sprintf(`{"messages":%s,"temperature":0,"max_tokens":200%s}`, b, extra)
}

func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if json.Unmarshal([]byte(got), &g) != nil || json.Unmarshal([]byte(want), &w) != nil || fmt.Sprint(g) != fmt.Sprint(w) {
		t.Errorf("arguments %s, want %s", got, want)
	}
}

// A model without a template gets the tools in the generic format, and its
// calls come back as tool-call pieces; a round trip (call, result, answer)
// works; several calls, and text that only looks like a call, too.
func TestToolCallsGeneric(t *testing.T) {
	w := scriptedWorker(t, "")
	tools := `,"tools":` + weatherTools
	msgs := []wire.ChatMessage{{Role: "user", Content: "Weather in Paris?"}}
	a := w.ask(t, chatBody(msgs, tools))
	if len(a.calls) != 1 || a.calls[0].Function.Name != "get_weather" || !strings.HasPrefix(a.calls[0].ID, "call_") ||
		a.content != "" || a.end.StopReason != wire.StopToolCalls {
		t.Fatalf("one call: %+v", a)
	}
	sameJSON(t, a.calls[0].Function.Arguments, `{"city": "Paris"}`)

	msgs = append(msgs, wire.ChatMessage{Role: "assistant", ToolCalls: a.calls},
		wire.ChatMessage{Role: "tool", ToolCallID: a.calls[0].ID, Content: `{"sky":"sunny"} ` + testmodel.ReplyMarker(1)})
	if b := w.ask(t, chatBody(msgs, tools)); b.content != toolReplies[1] || len(b.calls) != 0 || b.end.StopReason != wire.StopEOS {
		t.Fatalf("after the tool result: %+v", b)
	}

	two := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Both " + testmodel.ReplyMarker(2)}}, tools))
	if len(two.calls) != 2 || two.calls[1].Function.Name != "get_time" || two.content != "Let me look." || two.end.StopReason != wire.StopToolCalls {
		t.Fatalf("two calls: %+v", two)
	}
	sameJSON(t, two.calls[1].Function.Arguments, `{"tz": "CET"}`)

	bad := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Broken " + testmodel.ReplyMarker(3)}}, tools))
	if len(bad.calls) != 0 || bad.content != toolReplies[3] || bad.end.StopReason != wire.StopEOS {
		t.Fatalf("malformed call: %+v", bad)
	}

	// tool_choice none: no call is read, the text is the answer.
	none := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Weather?"}}, tools+`,"tool_choice":{"mode":"none"}`))
	if len(none.calls) != 0 || none.content != toolReplies[0] {
		t.Fatalf("tool_choice none: %+v", none)
	}
}

// tool_choice required and a named function are enforced by a grammar: the
// model, which would answer in plain text, must call.
func TestToolChoiceForced(t *testing.T) {
	w := scriptedWorker(t, "")
	tools := `,"tools":` + weatherTools
	for _, choice := range []string{`{"mode":"required"}`, `{"mode":"function","name":"get_time"}`} {
		a := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Hi " + testmodel.ReplyMarker(1)}}, tools+`,"tool_choice":`+choice))
		if len(a.calls) == 0 || a.end.StopReason != wire.StopToolCalls {
			t.Fatalf("tool_choice %s: %+v", choice, a)
		}
		if strings.Contains(choice, "get_time") && a.calls[0].Function.Name != "get_time" {
			t.Errorf("tool_choice %s called %s", choice, a.calls[0].Function.Name)
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(a.calls[0].Function.Arguments), &args); err != nil {
			t.Errorf("tool_choice %s: arguments %q: %v", choice, a.calls[0].Function.Arguments, err)
		}
	}
}

// A template that opens <think> blocks: the thinking is reasoning, the rest
// the answer. Logprobs ride along.
func TestReasoning(t *testing.T) {
	src, err := os.ReadFile("../chattemplate/testdata/templates/Qwen-Qwen3-8B.jinja")
	if err != nil {
		t.Fatal(err)
	}
	w := scriptedWorker(t, string(src))
	a := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Hi " + testmodel.ReplyMarker(4)}}, `,"logprobs":true,"top_logprobs":2`))
	if strings.TrimSpace(a.reasoning) != "I should say hi." || strings.TrimSpace(a.content) != "Hello!" || a.end.StopReason != wire.StopEOS {
		t.Fatalf("reasoning: %+v", a)
	}
	if a.logprobs != a.end.TokensOut {
		t.Errorf("%d logprobs for %d tokens", a.logprobs, a.end.TokensOut)
	}
}

// response_format json_schema constrains the output to the schema.
func TestResponseFormatSchema(t *testing.T) {
	w := scriptedWorker(t, "")
	schema := `{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer","minimum":0,"maximum":120}},"required":["name","age"],"additionalProperties":false}`
	for seed := range 5 {
		a := w.ask(t, chatBody([]wire.ChatMessage{{Role: "user", Content: "Who? " + testmodel.ReplyMarker(1)}},
			fmt.Sprintf(`,"temperature":1,"seed":%d,"response_format":{"type":"json_schema","schema":%s}`, seed, schema)))
		var v struct {
			Name *string `json:"name"`
			Age  *int    `json:"age"`
		}
		if err := json.Unmarshal([]byte(a.content), &v); err != nil || v.Name == nil || v.Age == nil || *v.Age < 0 || *v.Age > 120 || len(*v.Name) > 8 {
			t.Fatalf("seed %d: %q: %v", seed, a.content, err)
		}
	}
	resp, body := w.post(t, `{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","schema":{"type":"string","format":"hostname-idn-xyz"}}}`)
	if resp.StatusCode != 400 {
		t.Errorf("unsupported schema: %d %s", resp.StatusCode, body)
	}
}
