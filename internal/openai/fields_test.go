package openai

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

// Each field of a request lands in the worker request.
func TestFieldsMapToWorkerRequest(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	user := []wire.ChatMessage{{Role: "user", Content: "hi"}}
	schema := `{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}`
	weather := wire.Tool{Type: "function", Function: wire.ToolFunction{Name: "weather", Description: "the weather",
		Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}}}`), Strict: ptr(true)}}
	tools := `"tools":[{"type":"function","function":{"name":"weather","description":"the weather","strict":true,"parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	for _, tc := range []struct {
		path, body string
		want       wire.InferenceRequest
	}{
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":7}`, wire.InferenceRequest{Messages: user, MaxTokens: ptr(7)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":7,"max_completion_tokens":8}`, wire.InferenceRequest{Messages: user, MaxTokens: ptr(8)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"temperature":1.5,"top_p":0.9}`, wire.InferenceRequest{Messages: user, Temperature: ptr(1.5), TopP: ptr(0.9)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"top_p":0}`, wire.InferenceRequest{Messages: user, TopK: ptr(1)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"seed":7,"stop":["a","b"],"n":1}`, wire.InferenceRequest{Messages: user, Seed: ptr(uint32(7)), Stop: []string{"a", "b"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"presence_penalty":-1.5,"frequency_penalty":2}`, wire.InferenceRequest{Messages: user, PresencePenalty: ptr(-1.5), FrequencyPenalty: ptr(2.0)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"logit_bias":{"15":-100,"16":3.5}}`, wire.InferenceRequest{Messages: user, LogitBias: map[string]float64{"15": -100, "16": 3.5}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"logprobs":true,"top_logprobs":3}`, wire.InferenceRequest{Messages: user, Logprobs: true, TopLogprobs: ptr(3)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"logprobs":false}`, wire.InferenceRequest{Messages: user}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"top_k":40,"min_p":0.05,"repetition_penalty":1.1}`, wire.InferenceRequest{Messages: user, TopK: ptr(40), MinP: ptr(0.05), RepetitionPenalty: ptr(1.1)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"repeat_penalty":1.2}`, wire.InferenceRequest{Messages: user, RepetitionPenalty: ptr(1.2)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"repeat_penalty":1.2,"repetition_penalty":1.2}`, wire.InferenceRequest{Messages: user, RepetitionPenalty: ptr(1.2)}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"response_format":{"type":"text"}}`, wire.InferenceRequest{Messages: user}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"response_format":{"type":"json_object"}}`, wire.InferenceRequest{Messages: user, ResponseFormat: &wire.ResponseFormat{Type: "json_object"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","strict":true,"schema":` + schema + `}}}`,
			wire.InferenceRequest{Messages: user, ResponseFormat: &wire.ResponseFormat{Type: "json_schema", Schema: json.RawMessage(schema)}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`,
			wire.InferenceRequest{Messages: user, ResponseFormat: &wire.ResponseFormat{Type: "json_object"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,` + tools + `}`, wire.InferenceRequest{Messages: user, Tools: []wire.Tool{weather}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,` + tools + `,"tool_choice":"required","parallel_tool_calls":false}`,
			wire.InferenceRequest{Messages: user, Tools: []wire.Tool{weather}, ToolChoice: &wire.ToolChoice{Mode: "required"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,` + tools + `,"tool_choice":"none"}`,
			wire.InferenceRequest{Messages: user, Tools: []wire.Tool{weather}, ToolChoice: &wire.ToolChoice{Mode: "none"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,` + tools + `,"tool_choice":{"type":"function","function":{"name":"weather"}}}`,
			wire.InferenceRequest{Messages: user, Tools: []wire.Tool{weather}, ToolChoice: &wire.ToolChoice{Mode: "function", Name: "weather"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"tool_choice":"auto"}`, wire.InferenceRequest{Messages: user, ToolChoice: &wire.ToolChoice{Mode: "auto"}}},
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"reasoning_effort":"low"}`, wire.InferenceRequest{Messages: user, ReasoningEffort: "low"}},
		// Ignored on purpose.
		{"/v1/chat/completions", `{"model":"m",` + msgs + `,"user":"u","store":true,"metadata":{"a":"b"},"service_tier":"auto","safety_identifier":"s","prompt_cache_key":"k","modalities":["text"],"audio":null,"stream_options":{"include_usage":false}}`,
			wire.InferenceRequest{Messages: user}},
		// A conversation with tool calls and their results.
		{"/v1/chat/completions", `{"model":"m","messages":[
			{"role":"user","content":"weather?"},
			{"role":"assistant","content":null,"reasoning_content":"think","tool_calls":[{"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"city\":\"Oslo\"}"}},{"id":"call_2","type":"function","function":{"name":"weather","arguments":{"city":"Rome"}}}]},
			{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"sunny"}]},
			{"role":"tool","tool_call_id":"call_2","name":"weather","content":"rain"}]}`,
			wire.InferenceRequest{Messages: []wire.ChatMessage{
				{Role: "user", Content: "weather?"},
				{Role: "assistant", ReasoningContent: "think", ToolCalls: []wire.ToolCall{
					{ID: "call_1", Type: "function", Function: wire.ToolCallFunction{Name: "weather", Arguments: `{"city":"Oslo"}`}},
					{ID: "call_2", Type: "function", Function: wire.ToolCallFunction{Name: "weather", Arguments: `{"city":"Rome"}`}}}},
				{Role: "tool", Content: "sunny", ToolCallID: "call_1"},
				{Role: "tool", Content: "rain", ToolCallID: "call_2", Name: "weather"},
			}}},
		// Completions.
		{"/v1/completions", `{"model":"m","prompt":"p","max_tokens":3,"temperature":0.5,"top_p":0.5,"seed":1,"stop":"x","presence_penalty":1,"frequency_penalty":-1,"logit_bias":{"7":-100},"top_k":5,"min_p":0.1,"repeat_penalty":1.3,"user":"u"}`,
			wire.InferenceRequest{Prompt: "p", MaxTokens: ptr(3), Temperature: ptr(0.5), TopP: ptr(0.5), Seed: ptr(uint32(1)), Stop: []string{"x"},
				PresencePenalty: ptr(1.0), FrequencyPenalty: ptr(-1.0), LogitBias: map[string]float64{"7": -100}, TopK: ptr(5), MinP: ptr(0.1), RepetitionPenalty: ptr(1.3)}},
		{"/v1/completions", `{"model":"m","prompt":"p","logprobs":2}`, wire.InferenceRequest{Prompt: "p", MaxTokens: ptr(16), Logprobs: true, TopLogprobs: ptr(2)}},
		{"/v1/completions", `{"model":"m","prompt":"p","logprobs":0,"echo":false}`, wire.InferenceRequest{Prompt: "p", MaxTokens: ptr(16), Logprobs: true, TopLogprobs: ptr(0)}},
		{"/v1/completions", `{"model":"m","prompt":"p","response_format":{"type":"json_object"}}`, wire.InferenceRequest{Prompt: "p", MaxTokens: ptr(16), ResponseFormat: &wire.ResponseFormat{Type: "json_object"}}},
	} {
		b := newBackend("x")
		a := newAPI(t, b, nil)
		r := a.post(t, tc.path, tc.body)
		if r.status != http.StatusOK {
			t.Errorf("%s: %d %s", tc.body, r.status, r.body)
			continue
		}
		if got := b.lastCall(t).req; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant %s", tc.body, js(got), js(tc.want))
		}
	}
}

// Every field rbee cannot honour is a 400 that names it.
func TestRefusedFields(t *testing.T) {
	const msgs = `"model":"m","messages":[{"role":"user","content":"hi"}]`
	const tool = `"tools":[{"type":"function","function":{"name":"f"}}]`
	for _, tc := range []struct{ path, body, param string }{
		{"/v1/chat/completions", `{` + msgs + `,"modalities":["text","audio"]}`, "modalities"},
		{"/v1/chat/completions", `{` + msgs + `,"audio":{"voice":"alloy","format":"mp3"}}`, "audio"},
		{"/v1/chat/completions", `{` + msgs + `,"prediction":{"type":"content","content":"x"}}`, "prediction"},
		{"/v1/chat/completions", `{` + msgs + `,"web_search_options":{}}`, "web_search_options"},
		{"/v1/chat/completions", `{` + msgs + `,"functions":[{"name":"f"}]}`, "functions"},
		{"/v1/chat/completions", `{` + msgs + `,"function_call":"auto"}`, "function_call"},
		{"/v1/chat/completions", `{` + msgs + `,"verbosity":"low"}`, "verbosity"},
		{"/v1/chat/completions", `{` + msgs + `,"prompt":"x"}`, "prompt"},
		{"/v1/chat/completions", `{` + msgs + `,"logprobs":5}`, "logprobs"},
		{"/v1/chat/completions", `{` + msgs + `,"top_logprobs":2}`, "top_logprobs"},
		{"/v1/chat/completions", `{` + msgs + `,"logprobs":true,"top_logprobs":21}`, "top_logprobs"},
		{"/v1/chat/completions", `{` + msgs + `,"n":2}`, "n"},
		{"/v1/chat/completions", `{` + msgs + `,"presence_penalty":3}`, "presence_penalty"},
		{"/v1/chat/completions", `{` + msgs + `,"frequency_penalty":-2.5}`, "frequency_penalty"},
		{"/v1/chat/completions", `{` + msgs + `,"logit_bias":{"a":1}}`, "logit_bias"},
		{"/v1/chat/completions", `{` + msgs + `,"logit_bias":{"1":101}}`, "logit_bias"},
		{"/v1/chat/completions", `{` + msgs + `,"top_k":-1}`, "top_k"},
		{"/v1/chat/completions", `{` + msgs + `,"min_p":2}`, "min_p"},
		{"/v1/chat/completions", `{` + msgs + `,"repetition_penalty":0}`, "repetition_penalty"},
		{"/v1/chat/completions", `{` + msgs + `,"repeat_penalty":11}`, "repeat_penalty"},
		{"/v1/chat/completions", `{` + msgs + `,"repeat_penalty":1.1,"repetition_penalty":1.2}`, "repeat_penalty"},
		{"/v1/chat/completions", `{` + msgs + `,"reasoning_effort":"max"}`, "reasoning_effort"},
		{"/v1/chat/completions", `{` + msgs + `,"response_format":{"type":"yaml"}}`, "response_format.type"},
		{"/v1/chat/completions", `{` + msgs + `,"response_format":{"type":"json_schema"}}`, "response_format.json_schema"},
		{"/v1/chat/completions", `{` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","patternProperties":{"a":{}}}}}}`, "response_format.json_schema.schema"},
		{"/v1/chat/completions", `{` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"strange"}}}}`, "response_format.json_schema.schema"},
		{"/v1/chat/completions", `{` + msgs + `,"tools":[{"type":"custom","custom":{"name":"f"}}]}`, "tools[0].type"},
		{"/v1/chat/completions", `{` + msgs + `,"tools":[{"type":"function"}]}`, "tools[0].function"},
		{"/v1/chat/completions", `{` + msgs + `,"tools":[{"type":"function","function":{"name":"a b"}}]}`, "tools[0].function.name"},
		{"/v1/chat/completions", `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}`, "tools[1].function.name"},
		{"/v1/chat/completions", `{` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","patternProperties":{"a":{}}}}}]}`, "tools[0].function.parameters"},
		{"/v1/chat/completions", `{` + msgs + `,"tool_choice":"required"}`, "tool_choice"},
		{"/v1/chat/completions", `{` + msgs + `,` + tool + `,"tool_choice":"sometimes"}`, "tool_choice"},
		{"/v1/chat/completions", `{` + msgs + `,` + tool + `,"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice"},
		{"/v1/chat/completions", `{` + msgs + `,` + tool + `,"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}}`, "tool_choice"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"assistant","audio":{"id":"a"}}]}`, "messages[0].audio"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"assistant","function_call":{"name":"f","arguments":"{}"}}]}`, "messages[0].function_call"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"","format":"wav"}}]}]}`, "messages[0].content"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}`, "messages[0].content"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":[1]}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"arguments":"{}"}}]}]}`, "messages[0].tool_calls[0].function.name"},
		{"/v1/completions", `{"model":"m","prompt":"a","echo":true,"logprobs":1}`, "echo"},
		{"/v1/completions", `{"model":"m","prompt":"a","logprobs":6}`, "logprobs"},
		{"/v1/completions", `{"model":"m","prompt":"a","logprobs":true}`, "logprobs"},
		{"/v1/completions", `{"model":"m","prompt":"a","best_of":2}`, "best_of"},
		{"/v1/completions", `{"model":"m","prompt":"a","suffix":"b"}`, "suffix"},
		{"/v1/completions", `{"model":"m","prompt":"a",` + tool + `}`, "tools"},
		{"/v1/completions", `{"model":"m","prompt":"a","top_logprobs":2}`, "top_logprobs"},
		{"/v1/completions", `{"model":"m","prompt":"a","max_completion_tokens":2}`, "max_completion_tokens"},
		{"/v1/completions", `{"model":"m","prompt":[[1,2],[3]]}`, "prompt"},
		{"/v1/completions", `{"model":"m","prompt":[` + strings.Repeat(`"a",`, MaxPrompts) + `"a"]}`, "prompt"},
	} {
		b := newBackend("x")
		a := newAPI(t, b, nil)
		r := a.post(t, tc.path, tc.body)
		e := r.apiErr(t)
		if r.status != http.StatusBadRequest || e.Param == nil || *e.Param != tc.param || e.Code != wire.CodeInvalidValue || !strings.Contains(e.Message, tc.param) && !strings.Contains(e.Message, strings.SplitN(tc.param, "[", 2)[0]) {
			t.Errorf("%s: %d %s, want a 400 naming %s", tc.body, r.status, r.body, tc.param)
		}
		if b.callCount() != 0 {
			t.Errorf("%s: the backend was called", tc.body)
		}
	}
}

// Whatever a client sends, the API answers 200 or a 4xx in OpenAI's shape
// and never fails inside.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
		`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{"a":1}}}]},{"role":"tool","tool_call_id":"c","content":[{"type":"text","text":"x"}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array","items":{"enum":[1,"a"]}}}},"logprobs":true,"top_logprobs":3,"logit_bias":{"1":-100}}`,
		`{"model":"m","prompt":["a","b"],"logprobs":2,"echo":true,"stream":true}`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"parallel_tool_calls":false,"modalities":["text"]}`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	b := newBackend()
	b.script = weatherScript
	s := New(Options{Backend: b, Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, body string, completions bool) {
		path := "/v1/chat/completions"
		if completions {
			path = "/v1/completions"
		}
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.RemoteAddr = "127.0.0.1:1234"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusOK:
		case w.Code >= 400 && w.Code < 500:
			var eb errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error.Message == "" {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("%s: %d %s", body, w.Code, w.Body)
		}
	})
}

// The README lists every field the API ignores on purpose or refuses.
func TestFieldsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip(err)
	}
	section := string(readme)
	if i := strings.Index(section, "## The OpenAI-compatible API"); i >= 0 {
		section = section[i:]
	}
	for _, m := range []map[string]refusal{chatRefused, completionRefused} {
		for k := range m {
			if !strings.Contains(section, "`"+k+"`") {
				t.Errorf("README does not name the refused field %s", k)
			}
		}
	}
	for k := range ignoredFields {
		if !strings.Contains(section, "`"+k+"`") {
			t.Errorf("README does not list the ignored field %s", k)
		}
	}
}
