package toolcall

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

var weatherTools = []Tool{
	{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`)},
	{Name: "get_time", Parameters: json.RawMessage(`{"type":"object","properties":{}}`)},
	{Name: "brave_search", Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}`)},
}

type parseCase struct {
	name string
	f    Format
	opt  Options
	text string
	want Result // IDs are not compared (they are random)
}

func tools() Options { return Options{Tools: weatherTools} }

func call(name, args string) Call { return Call{Name: name, Arguments: args} }

var parseCases = []parseCase{
	// hermes
	{"hermes one call", Hermes, tools(),
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
		Result{Calls: []Call{call("get_weather", `{"city":"Paris"}`)}}},
	{"hermes several calls", Hermes, tools(),
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
		Result{Calls: []Call{call("get_weather", `{"city":"Paris"}`), call("get_time", `{}`)}}},
	{"hermes text then call", Hermes, tools(),
		"Let me check.\n\n<tool_call>\n{\"arguments\": {\"city\": \"Oslo\"}, \"name\": \"get_weather\"}\n</tool_call>\n",
		Result{Content: "Let me check.", Calls: []Call{call("get_weather", `{"city":"Oslo"}`)}}},
	{"hermes call then text", Hermes, tools(),
		"<tool_call>{\"name\": \"get_time\"}</tool_call>\nDone.",
		Result{Content: "Done.", Calls: []Call{call("get_time", `{}`)}}},
	{"hermes invalid json stays text", Hermes, tools(),
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {city: Paris}}\n</tool_call>",
		Result{Content: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {city: Paris}}\n</tool_call>"}},
	{"hermes unclosed json stays text", Hermes, tools(),
		"Sure <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par",
		Result{Content: "Sure <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par"}},
	{"hermes unknown tool stays text", Hermes, tools(),
		"<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
		Result{Content: "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>"}},
	{"hermes bad call then good call", Hermes, tools(),
		"<tool_call>{\"name\": \"nope\"}</tool_call>\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>",
		Result{Content: "<tool_call>{\"name\": \"nope\"}</tool_call>", Calls: []Call{call("get_time", `{}`)}}},
	{"hermes unbalanced call then good call", Hermes, tools(),
		"<tool_call>{\"a\": [}\n<tool_call>{\"name\": \"get_time\"}</tool_call>",
		Result{Content: "<tool_call>{\"a\": [}", Calls: []Call{call("get_time", `{}`)}}},
	{"hermes marker without call", Hermes, tools(),
		"I will use <tool_call> tags.",
		Result{Content: "I will use <tool_call> tags."}},
	{"hermes missing close tag", Hermes, tools(),
		"<tool_call>{\"name\": \"get_time\", \"arguments\": {}}",
		Result{Calls: []Call{call("get_time", `{}`)}}},
	{"hermes partial close tag at end", Hermes, tools(),
		"<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_",
		Result{Content: "</tool_", Calls: []Call{call("get_time", `{}`)}}},
	{"hermes arguments as string", Hermes, tools(),
		`<tool_call>{"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}</tool_call>`,
		Result{Calls: []Call{call("get_weather", `{"city":"Rome"}`)}}},
	{"hermes arguments not an object", Hermes, tools(),
		`<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>`,
		Result{Content: `<tool_call>{"name": "get_weather", "arguments": [1]}</tool_call>`}},
	{"hermes unicode", Hermes, tools(),
		"Voilà 🌦️ <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich 東京\"}}</tool_call>",
		Result{Content: "Voilà 🌦️", Calls: []Call{call("get_weather", `{"city":"Zürich 東京"}`)}}},
	{"hermes escaped braces in strings", Hermes, tools(),
		`<tool_call>{"name": "get_weather", "arguments": {"city": "a}\"]{["}}</tool_call>`,
		Result{Calls: []Call{call("get_weather", `{"city":"a}\"]{["}`)}}},
	{"hermes bare json at start", Hermes, tools(),
		`  {"name": "get_time", "arguments": {}}`,
		Result{Calls: []Call{call("get_time", `{}`)}}},
	{"hermes json answer is not a call", Hermes, tools(),
		`{"city": "Paris", "name": "x"}`,
		Result{Content: `{"city": "Paris", "name": "x"}`}},
	{"hermes bare json not at start stays text", Hermes, tools(),
		`Here: {"name": "get_time", "arguments": {}}`,
		Result{Content: `Here: {"name": "get_time", "arguments": {}}`}},
	{"hermes think then call", Hermes, Options{Reasoning: true, Tools: weatherTools},
		"<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
		Result{Reasoning: "The user wants weather.", Calls: []Call{call("get_weather", `{"city":"Paris"}`)}}},
	{"hermes marker inside think is reasoning", Hermes, Options{Reasoning: true, Tools: weatherTools},
		"<think>maybe <tool_call>{\"name\": \"get_time\"}</tool_call></think>No.",
		Result{Reasoning: "maybe <tool_call>{\"name\": \"get_time\"}</tool_call>", Content: "No."}},
	{"no tools: no calls", Hermes, Options{},
		"<tool_call>{\"name\": \"get_time\"}</tool_call>",
		Result{Content: "<tool_call>{\"name\": \"get_time\"}</tool_call>"}},

	// generic
	{"generic one call", Generic, tools(),
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}\n</tool_call>",
		Result{Calls: []Call{call("get_weather", `{"city":"Lima"}`)}}},
	{"generic plain answer", Generic, tools(),
		"The weather is nice.\n",
		Result{Content: "The weather is nice.\n"}},

	// llama3
	{"llama3 one call", Llama3, tools(),
		`{"name": "get_weather", "parameters": {"city": "Paris"}}`,
		Result{Calls: []Call{call("get_weather", `{"city":"Paris"}`)}}},
	{"llama3 type function", Llama3, tools(),
		`{"type": "function", "name": "get_weather", "parameters": {"city": "Paris"}}`,
		Result{Calls: []Call{call("get_weather", `{"city":"Paris"}`)}}},
	{"llama3 python tag json", Llama3, tools(),
		`<|python_tag|>{"name": "get_time", "parameters": {}}`,
		Result{Calls: []Call{call("get_time", `{}`)}}},
	{"llama3 several calls", Llama3, tools(),
		`{"name": "get_weather", "parameters": {"city": "A"}}; {"name": "get_weather", "parameters": {"city": "B"}}`,
		Result{Calls: []Call{call("get_weather", `{"city":"A"}`), call("get_weather", `{"city":"B"}`)}}},
	{"llama3 builtin", Llama3, tools(),
		`<|python_tag|>brave_search.call(query="weather in Paris, today")`,
		Result{Calls: []Call{call("brave_search", `{"query":"weather in Paris, today"}`)}}},
	{"llama3 text then python tag", Llama3, tools(),
		"Searching.\n<|python_tag|>brave_search.call(query=\"x\")",
		Result{Content: "Searching.", Calls: []Call{call("brave_search", `{"query":"x"}`)}}},
	{"llama3 broken builtin stays text", Llama3, tools(),
		`<|python_tag|>print("hi")`,
		Result{Content: `<|python_tag|>print("hi")`}},
	{"llama3 json in text stays text", Llama3, tools(),
		`The call is {"name": "get_time", "parameters": {}}`,
		Result{Content: `The call is {"name": "get_time", "parameters": {}}`}},
	{"llama3 invalid json stays text", Llama3, tools(),
		`{"name": "get_time", "parameters": {,}}`,
		Result{Content: `{"name": "get_time", "parameters": {,}}`}},
	{"llama3 plain answer", Llama3, tools(),
		"It is sunny.",
		Result{Content: "It is sunny."}},

	// mistral
	{"mistral one call", Mistral, tools(),
		`[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "abcDEF123"}]`,
		Result{Calls: []Call{{ID: "abcDEF123", Name: "get_weather", Arguments: `{"city":"Paris"}`}}}},
	{"mistral non-string id", Mistral, tools(),
		`[TOOL_CALLS] [{"name": "get_time", "arguments": {}, "id": 12}]`,
		Result{Calls: []Call{call("get_time", `{}`)}}},
	{"mistral several calls", Mistral, tools(),
		`[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "A"}}, {"name": "get_time", "arguments": {}}]`,
		Result{Calls: []Call{call("get_weather", `{"city":"A"}`), call("get_time", `{}`)}}},
	{"mistral text then call", Mistral, tools(),
		`Checking. [TOOL_CALLS] [{"name": "get_time", "arguments": {}}]`,
		Result{Content: "Checking.", Calls: []Call{call("get_time", `{}`)}}},
	{"mistral args form", Mistral, tools(),
		`[TOOL_CALLS]get_weather[ARGS]{"city": "Nice"}[TOOL_CALLS]get_time[CALL_ID]a1b2c3d4e[ARGS]{}`,
		Result{Calls: []Call{call("get_weather", `{"city":"Nice"}`), {ID: "a1b2c3d4e", Name: "get_time", Arguments: `{}`}}}},
	{"mistral without its control token", Mistral, tools(),
		` [{"name": "get_time", "arguments": {}}]`,
		Result{Calls: []Call{call("get_time", `{}`)}}},
	{"mistral array in text stays text", Mistral, tools(),
		`List: [{"name": "get_time", "arguments": {}}]`,
		Result{Content: `List: [{"name": "get_time", "arguments": {}}]`}},
	{"mistral json answer is not a call", Mistral, tools(),
		`[{"name": "Alice"}]`,
		Result{Content: `[{"name": "Alice"}]`}},
	{"mistral invalid stays text", Mistral, tools(),
		`[TOOL_CALLS] [{"name": "get_time", "arguments": {]`,
		Result{Content: `[TOOL_CALLS] [{"name": "get_time", "arguments": {]`}},
	{"mistral one bad call spoils the array", Mistral, tools(),
		`[TOOL_CALLS] [{"name": "get_time", "arguments": {}}, {"name": "nope", "arguments": {}}]`,
		Result{Content: `[TOOL_CALLS] [{"name": "get_time", "arguments": {}}, {"name": "nope", "arguments": {}}]`}},

	// reasoning
	{"think", Generic, Options{Reasoning: true},
		"<think>\n  I should greet.\n\n</think>\n\nHello!",
		Result{Reasoning: "I should greet.", Content: "Hello!"}},
	{"think not at start is content", Generic, Options{Reasoning: true},
		"Hi <think>x</think>",
		Result{Content: "Hi <think>x</think>"}},
	{"think never closed", Generic, Options{Reasoning: true},
		"<think>still thinking  ",
		Result{Reasoning: "still thinking"}},
	{"thinking open", Generic, Options{ThinkingOpen: true},
		"step 1\nstep 2\n</think>\nAnswer: 4",
		Result{Reasoning: "step 1\nstep 2", Content: "Answer: 4"}},
	{"thinking open empty", Generic, Options{ThinkingOpen: true},
		"\n\n</think>\n\nAnswer",
		Result{Content: "Answer"}},
	{"think without reasoning option is content", Generic, Options{},
		"<think>x</think>y",
		Result{Content: "<think>x</think>y"}},
	{"think unicode", Hermes, Options{Reasoning: true},
		"<think>Überlegung: 日本語 🙂</think>Réponse",
		Result{Reasoning: "Überlegung: 日本語 🙂", Content: "Réponse"}},
	{"partial think tag at end", Generic, Options{Reasoning: true},
		"<thi",
		Result{Content: "<thi"}},
	{"empty", Hermes, tools(), "", Result{}},
}

func withoutIDs(r Result) Result {
	for i := range r.Calls {
		r.Calls[i].ID = ""
	}
	return r
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.f, tc.text, tc.opt)
			for i, c := range got.Calls {
				if tc.f == Mistral {
					if want := tc.want.Calls[i].ID; want != "" && c.ID != want {
						t.Errorf("call %d: ID %q, want the model's %q", i, c.ID, want)
					}
					if !isMistralID(c.ID) {
						t.Errorf("call %d: ID %q is not 9 letters and digits", i, c.ID)
					}
				} else if !openAIID.MatchString(c.ID) {
					t.Errorf("call %d: ID %q is not OpenAI-style", i, c.ID)
				}
			}
			if g, w := withoutIDs(got), withoutIDs(tc.want); !reflect.DeepEqual(g, w) {
				t.Errorf("Parse(%q)\n got %#v\nwant %#v", tc.text, g, w)
			}
		})
	}
}

var openAIID = regexp.MustCompile(`^call_[A-Za-z0-9]{24}$`)

func TestIDsDiffer(t *testing.T) {
	text := strings.Repeat(`<tool_call>{"name": "get_time"}</tool_call>`, 50)
	seen := map[string]bool{}
	for _, c := range Parse(Hermes, text, tools()).Calls {
		if seen[c.ID] {
			t.Fatalf("ID %s twice", c.ID)
		}
		seen[c.ID] = true
	}
	if len(seen) != 50 {
		t.Fatalf("%d calls, want 50", len(seen))
	}
}

func TestDetectFormat(t *testing.T) {
	cases := map[string]Format{
		"": Generic,
		"{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}": Generic,
		"{%- if tools %}<tools>{% endif %}{{- '<tool_call>\\n{\"name\": \"' }}":                    Hermes,
		"{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' }}":                               Llama3,
		"{{- '<|python_tag|>' + tool_call.name }}":                                                 Llama3,
		"{{- '[TOOL_CALLS] [' }}": Mistral,
	}
	for src, want := range cases {
		if got := DetectFormat(src); got != want {
			t.Errorf("DetectFormat(%q) = %q, want %q", src, got, want)
		}
	}
	if !PromptOpensThinking("<|im_start|>assistant\n<think>\n") || PromptOpensThinking("<|im_start|>assistant\n<think>\n\n</think>\n\n") {
		t.Error("PromptOpensThinking")
	}
	if !DetectReasoning("{{ '<think>\\n' }}") || DetectReasoning("plain") {
		t.Error("DetectReasoning")
	}
}

// The real chat templates (from the models' tokenizer_config.json, as
// llama.cpp's models/templates keeps them).
func TestDetectFormatRealTemplates(t *testing.T) {
	cases := []struct {
		file      string
		format    Format
		reasoning bool
	}{
		{"NousResearch-Hermes-3-Llama-3.1-8B", Generic, false}, // the default template: plain ChatML
		{"Qwen-Qwen2.5-7B-Instruct", Hermes, false},
		{"Qwen-Qwen3-8B", Hermes, true},
		{"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", Generic, true}, // DeepSeek's own call syntax is not parsed
		{"google-gemma-2-2b-it", Generic, false},
		{"meta-llama-Llama-3.1-8B-Instruct", Llama3, false},
		{"meta-llama-Llama-3.2-3B-Instruct", Llama3, false},
		{"microsoft-Phi-3.5-mini-instruct", Generic, false},
		{"mistralai-Mistral-7B-Instruct-v0.3", Mistral, false},
	}
	for _, tc := range cases {
		src, err := os.ReadFile(filepath.Join("testdata", "templates", tc.file+".jinja"))
		if err != nil {
			t.Fatal(err)
		}
		if got := DetectFormat(string(src)); got != tc.format {
			t.Errorf("%s: format %q, want %q", tc.file, got, tc.format)
		}
		if got := DetectReasoning(string(src)); got != tc.reasoning {
			t.Errorf("%s: reasoning %v, want %v", tc.file, got, tc.reasoning)
		}
	}
	// The ends of prompts these templates render (add_generation_prompt).
	prompts := map[string]bool{
		"<|im_start|>assistant\n":                           false, // Qwen3: the model opens <think> itself
		"<|im_start|>assistant\n<think>\n\n</think>\n\n":    false, // Qwen3, enable_thinking false
		"<｜Assistant｜><think>\n":                            true,  // DeepSeek-R1 distills
		"<|start_header_id|>assistant<|end_header_id|>\n\n": false,
	}
	for p, want := range prompts {
		if got := PromptOpensThinking(p); got != want {
			t.Errorf("PromptOpensThinking(%q) = %v", p, got)
		}
	}
}
