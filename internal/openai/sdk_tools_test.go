package openai

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/rbee/rbee/internal/wire"
)

// lp is a logprob with one alternative.
func lp(token string, p float64) []wire.TokenLogprob {
	return []wire.TokenLogprob{{Token: token, Logprob: p, Top: []wire.TopLogprob{{Token: token, Logprob: p}, {Token: "z", Logprob: -9}}}}
}

// weatherScript is a model that thinks, then calls weather and clock, and
// once it has their results answers.
func weatherScript(req wire.InferenceRequest) ([]wire.Event, string) {
	if n := len(req.Messages); n > 0 && req.Messages[n-1].Role == "tool" {
		return []wire.Event{{T: "Sunny ", Logprobs: lp("Sunny ", -0.5)}, {T: "at noon."}}, wire.StopEOS
	}
	return []wire.Event{
		{R: "I should ", Logprobs: lp("I", -0.1)},
		{R: "look."},
		{Call: &wire.ToolCallDelta{Index: 0, ID: "call_w", Name: "weather"}, Logprobs: lp("<tool_call>", -0.2)},
		{Call: &wire.ToolCallDelta{Index: 0, Arguments: `{"city":`}},
		{Call: &wire.ToolCallDelta{Index: 0, Arguments: `"Oslo"}`}},
		{Call: &wire.ToolCallDelta{Index: 1, Name: "clock"}}, // no id: the API makes one
		{Call: &wire.ToolCallDelta{Index: 1, Arguments: `{}`}},
	}, wire.StopToolCalls
}

func sdkClient(a *api) sdk.Client {
	return sdk.NewClient(option.WithBaseURL(a.srv.URL+"/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
}

var weatherTools = []sdk.ChatCompletionToolUnionParam{
	sdk.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "weather", Description: sdk.String("the weather in a city"),
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}, "required": []string{"city"}}}),
	sdk.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "clock"}),
}

// A tool round trip as the official client makes it: the model calls two
// tools, the client sends their results back, the model answers.
func TestToolRoundTrip(t *testing.T) {
	b := newBackend()
	b.script = weatherScript
	a := newAPI(t, b, nil)
	c := sdkClient(a)
	ctx := context.Background()

	params := sdk.ChatCompletionNewParams{
		Model:    "m",
		Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("Weather in Oslo?")},
		Tools:    weatherTools,
	}
	chat, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	m := chat.Choices[0].Message
	if chat.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 2 || m.JSON.Content.Raw() != "null" {
		t.Fatalf("answer %s", chat.RawJSON())
	}
	if tc := m.ToolCalls[0]; tc.ID != "call_w" || tc.Type != "function" || tc.Function.Name != "weather" || tc.Function.Arguments != `{"city":"Oslo"}` {
		t.Errorf("first call %+v", tc)
	}
	if tc := m.ToolCalls[1]; !strings.HasPrefix(tc.ID, "call_") || len(tc.ID) < 10 || tc.Function.Name != "clock" || tc.Function.Arguments != `{}` {
		t.Errorf("second call %+v", tc)
	}
	if r := m.JSON.ExtraFields["reasoning_content"].Raw(); r != `"I should look."` {
		t.Errorf("reasoning_content %s", r)
	}
	if got := b.lastCall(t).req.Tools; len(got) != 2 || got[0].Function.Name != "weather" || !strings.Contains(string(got[0].Function.Parameters), `"city"`) {
		t.Errorf("worker tools %s", js(got))
	}

	params.Messages = append(params.Messages, m.ToParam(),
		sdk.ToolMessage(`{"sky":"sunny"}`, m.ToolCalls[0].ID), sdk.ToolMessage("12:00", m.ToolCalls[1].ID))
	chat, err = c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "Sunny at noon." || chat.Choices[0].FinishReason != "stop" || len(chat.Choices[0].Message.ToolCalls) != 0 {
		t.Errorf("final answer %s", chat.RawJSON())
	}
	want := []wire.ChatMessage{
		{Role: "user", Content: "Weather in Oslo?"},
		{Role: "assistant", ToolCalls: []wire.ToolCall{
			{ID: "call_w", Type: "function", Function: wire.ToolCallFunction{Name: "weather", Arguments: `{"city":"Oslo"}`}},
			{ID: m.ToolCalls[1].ID, Type: "function", Function: wire.ToolCallFunction{Name: "clock", Arguments: `{}`}}}},
		{Role: "tool", Content: `{"sky":"sunny"}`, ToolCallID: "call_w"},
		{Role: "tool", Content: "12:00", ToolCallID: m.ToolCalls[1].ID},
	}
	if got := b.lastCall(t).req.Messages; !reflect.DeepEqual(got, want) {
		t.Errorf("conversation\n got %s\nwant %s", js(got), js(want))
	}

	// parallel_tool_calls false keeps the first call.
	params.Messages = params.Messages[:1]
	params.ParallelToolCalls = sdk.Bool(false)
	chat, err = c.Chat.Completions.New(ctx, params)
	if err != nil || len(chat.Choices[0].Message.ToolCalls) != 1 || chat.Choices[0].Message.ToolCalls[0].Function.Name != "weather" {
		t.Errorf("parallel_tool_calls false: %v %s", err, chat.RawJSON())
	}
}

// Streamed tool calls come as OpenAI streams them, and the client's
// accumulator puts them together; the reasoning streams as
// delta.reasoning_content.
func TestStreamedToolCalls(t *testing.T) {
	b := newBackend()
	b.script = weatherScript
	a := newAPI(t, b, nil)
	c := sdkClient(a)
	stream := c.Chat.Completions.NewStreaming(context.Background(), sdk.ChatCompletionNewParams{
		Model:    "m",
		Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("Weather in Oslo?")},
		Tools:    weatherTools,
		Logprobs: sdk.Bool(true),
	})
	var (
		acc       sdk.ChatCompletionAccumulator
		reasoning strings.Builder
		finished  []string
	)
	for stream.Next() {
		ch := stream.Current()
		if !acc.AddChunk(ch) {
			t.Fatalf("the accumulator refused %s", ch.RawJSON())
		}
		if len(ch.Choices) > 0 {
			if r, ok := ch.Choices[0].Delta.JSON.ExtraFields["reasoning_content"]; ok {
				var s string
				_ = json.Unmarshal([]byte(r.Raw()), &s)
				reasoning.WriteString(s)
			}
		}
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc.Name+tc.Arguments)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	m := acc.Choices[0].Message
	if acc.Choices[0].FinishReason != "tool_calls" || len(m.ToolCalls) != 2 || m.Content != "" {
		t.Fatalf("accumulated %+v", acc.ChatCompletion)
	}
	if tc := m.ToolCalls[0]; tc.ID != "call_w" || tc.Type != "function" || tc.Function.Name != "weather" || tc.Function.Arguments != `{"city":"Oslo"}` {
		t.Errorf("first call %+v", tc)
	}
	if tc := m.ToolCalls[1]; !strings.HasPrefix(tc.ID, "call_") || tc.Function.Name != "clock" || tc.Function.Arguments != `{}` {
		t.Errorf("second call %+v", tc)
	}
	if !reflect.DeepEqual(finished, []string{`weather{"city":"Oslo"}`, `clock{}`}) {
		t.Errorf("JustFinishedToolCall: %q", finished)
	}
	if reasoning.String() != "I should look." {
		t.Errorf("reasoning %q", reasoning.String())
	}
	if l := acc.Choices[0].Logprobs.Content; len(l) != 2 || l[0].Token != "I" || l[1].Token != "<tool_call>" || len(l[1].TopLogprobs) != 2 {
		t.Errorf("logprobs %+v", acc.Choices[0].Logprobs)
	}
}

// The exact chunks of a streamed call: the first has index, id, type,
// name and empty arguments; later ones the index and arguments.
func TestToolCallChunks(t *testing.T) {
	b := newBackend()
	b.script = weatherScript
	a := newAPI(t, b, nil)
	r := a.post(t, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"parallel_tool_calls":false,
		"tools":[{"type":"function","function":{"name":"weather"}},{"type":"function","function":{"name":"clock"}}]}`)
	var calls []string
	for _, e := range r.events(t) {
		if strings.Contains(e, `"tool_calls"`) && !strings.Contains(e, `"finish_reason":"tool_calls"`) {
			var ch struct {
				Choices []struct {
					Delta json.RawMessage `json:"delta"`
				} `json:"choices"`
			}
			_ = json.Unmarshal([]byte(e), &ch)
			calls = append(calls, string(ch.Choices[0].Delta))
		}
	}
	want := []string{
		`{"tool_calls":[{"index":0,"id":"call_w","type":"function","function":{"name":"weather","arguments":""}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"\"Oslo\"}"}}]}`,
	}
	if !reflect.DeepEqual(calls, want) {
		t.Errorf("tool call deltas\n got %s\nwant %s", calls, want)
	}
	if !strings.Contains(r.String(), `"finish_reason":"tool_calls"`) {
		t.Errorf("no tool_calls finish: %s", r.body)
	}
}

// json_schema output parses into the Go struct it describes.
func TestJSONSchemaOutput(t *testing.T) {
	b := newBackend()
	b.script = func(wire.InferenceRequest) ([]wire.Event, string) {
		return []wire.Event{{T: `{"name":`}, {T: `"Ann",`}, {T: `"age":7}`}}, ""
	}
	a := newAPI(t, b, nil)
	c := sdkClient(a)
	schema := map[string]any{"type": "object", "properties": map[string]any{
		"name": map[string]any{"type": "string"}, "age": map[string]any{"type": "integer", "minimum": 0}},
		"required": []string{"name", "age"}, "additionalProperties": false}
	chat, err := c.Chat.Completions.New(context.Background(), sdk.ChatCompletionNewParams{
		Model:    "m",
		Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("a person")},
		ResponseFormat: sdk.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Strict: sdk.Bool(true), Schema: schema}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Name string `json:"name"`
		Age  int    `json:"age"`
	}
	if err := json.Unmarshal([]byte(chat.Choices[0].Message.Content), &p); err != nil || p.Name != "Ann" || p.Age != 7 {
		t.Errorf("%v %+v", err, p)
	}
	f := b.lastCall(t).req.ResponseFormat
	var got map[string]any
	if f == nil || f.Type != wire.FormatJSONSchema || json.Unmarshal(f.Schema, &got) != nil || got["additionalProperties"] != false {
		t.Errorf("worker response_format %s", js(f))
	}
}

// Log-probabilities in the chat shape and in the legacy completions shape.
func TestLogprobs(t *testing.T) {
	b := newBackend()
	b.script = func(wire.InferenceRequest) ([]wire.Event, string) {
		return []wire.Event{{T: "ab", Logprobs: append(lp("a", -1), lp("b", -2)...)}, {Logprobs: []wire.TokenLogprob{{Token: "é", Logprob: -3}}}, {T: "é"}}, ""
	}
	a := newAPI(t, b, nil)
	c := sdkClient(a)
	ctx := context.Background()

	chat, err := c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{
		Model: "m", Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("x")},
		Logprobs: sdk.Bool(true), TopLogprobs: sdk.Int(2),
	})
	if err != nil {
		t.Fatal(err)
	}
	l := chat.Choices[0].Logprobs.Content
	if len(l) != 3 || l[0].Token != "a" || l[0].Logprob != -1 || len(l[0].TopLogprobs) != 2 || l[0].TopLogprobs[1].Token != "z" ||
		!reflect.DeepEqual(l[2].Bytes, []int64{0xc3, 0xa9}) || l[2].TopLogprobs == nil {
		t.Errorf("chat logprobs %s", chat.Choices[0].Logprobs.RawJSON())
	}
	if !strings.Contains(chat.RawJSON(), `"refusal":null`) {
		t.Errorf("chat logprobs lack refusal null: %s", chat.RawJSON())
	}
	// Without logprobs they are null.
	chat, _ = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{Model: "m", Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("x")}})
	if chat.Choices[0].JSON.Logprobs.Raw() != "null" {
		t.Errorf("logprobs not asked for: %s", chat.RawJSON())
	}

	cmpl, err := c.Completions.New(ctx, sdk.CompletionNewParams{
		Model: "m", Prompt: sdk.CompletionNewParamsPromptUnion{OfString: sdk.String("p")}, Logprobs: sdk.Int(1),
	})
	if err != nil {
		t.Fatal(err)
	}
	cl := cmpl.Choices[0].Logprobs
	if !reflect.DeepEqual(cl.Tokens, []string{"a", "b", "é"}) || !reflect.DeepEqual(cl.TokenLogprobs, []float64{-1, -2, -3}) ||
		!reflect.DeepEqual(cl.TextOffset, []int64{0, 1, 2}) || !reflect.DeepEqual(cl.TopLogprobs[0], map[string]float64{"a": -1, "z": -9}) ||
		!reflect.DeepEqual(cl.TopLogprobs[2], map[string]float64{"é": -3}) {
		t.Errorf("completion logprobs %s", cmpl.Choices[0].Logprobs.RawJSON())
	}

	// Streamed: each chunk carries its tokens' logprobs, offsets running on.
	s := c.Completions.NewStreaming(ctx, sdk.CompletionNewParams{
		Model: "m", Prompt: sdk.CompletionNewParamsPromptUnion{OfString: sdk.String("p")}, Logprobs: sdk.Int(0),
	})
	var offsets []int64
	var tokens []string
	for s.Next() {
		for _, ch := range s.Current().Choices {
			offsets = append(offsets, ch.Logprobs.TextOffset...)
			tokens = append(tokens, ch.Logprobs.Tokens...)
		}
	}
	if err := s.Err(); err != nil || !reflect.DeepEqual(offsets, []int64{0, 1, 2}) || !reflect.DeepEqual(tokens, []string{"a", "b", "é"}) {
		t.Errorf("streamed completion logprobs: %v %v %v", err, offsets, tokens)
	}
}

// A list of prompts is a choice per prompt, with its index; usage sums.
func TestPromptList(t *testing.T) {
	b := newBackend()
	b.script = func(req wire.InferenceRequest) ([]wire.Event, string) {
		return []wire.Event{{T: strings.ToUpper(req.Prompt)}}, ""
	}
	a := newAPI(t, b, nil)
	c := sdkClient(a)
	ctx := context.Background()
	prompts := sdk.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"a", "b", "c"}}
	cmpl, err := c.Completions.New(ctx, sdk.CompletionNewParams{Model: "m", Prompt: prompts, Echo: sdk.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmpl.Choices) != 3 || cmpl.Usage.PromptTokens != 21 || cmpl.Usage.CompletionTokens != 3 {
		t.Fatalf("answer %s", cmpl.RawJSON())
	}
	for i, ch := range cmpl.Choices {
		p := string(rune('a' + i))
		if ch.Index != int64(i) || ch.Text != p+strings.ToUpper(p) || ch.FinishReason != "stop" {
			t.Errorf("choice %d: %s", i, ch.RawJSON())
		}
	}
	if b.callCount() != 3 {
		t.Errorf("%d worker requests", b.callCount())
	}

	s := c.Completions.NewStreaming(ctx, sdk.CompletionNewParams{Model: "m", Prompt: prompts,
		StreamOptions: sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)}})
	texts := map[int64]string{}
	finished := 0
	var total int64
	for s.Next() {
		ch := s.Current()
		for _, c := range ch.Choices {
			texts[c.Index] += c.Text
			if c.FinishReason != "" {
				finished++
			}
		}
		total += ch.Usage.TotalTokens
	}
	if err := s.Err(); err != nil || !reflect.DeepEqual(texts, map[int64]string{0: "A", 1: "B", 2: "C"}) || finished != 3 || total != 24 {
		t.Errorf("stream: %v %v finished %d total %d", err, texts, finished, total)
	}
}
