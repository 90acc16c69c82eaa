package openai

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func TestChatCompletion(t *testing.T) {
	b := newBackend("Hel", "lo", "!")
	a := newAPI(t, b, nil)
	r := a.post(t, "/v1/chat/completions", `{
		"model": "alpha",
		"messages": [
			{"role": "developer", "content": "Be brief."},
			{"role": "user", "content": [{"type": "text", "text": "Say "}, {"type": "text", "text": "hello"}], "name": "ann"},
			{"role": "assistant", "content": null, "tool_calls": []},
			{"role": "user", "content": "again"}
		],
		"max_tokens": 99, "max_completion_tokens": 5, "temperature": 0, "top_p": 0, "seed": 4294967298,
		"stop": "\n", "n": 1, "stream": false,
		"frequency_penalty": 0.5, "logit_bias": {"1": 2}, "user": "u", "tools": [], "response_format": {"type": "text"},
		"some_future_field": {"deep": [1, 2, 3]}
	}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got ChatCompletion
	r.decode(t, &got)
	want := ChatCompletion{
		ID: got.ID, Object: "chat.completion", Created: 1700000000, Model: "alpha",
		Choices: []ChatChoice{{Message: AssistantReply{Role: "assistant", Content: "Hello!"}, FinishReason: "stop"}},
		Usage:   &Usage{PromptTokens: 7, CompletionTokens: 3, TotalTokens: 10, PromptTokensDetails: PromptTokensDetails{CachedTokens: 5}},
	}
	if !strings.HasPrefix(got.ID, "chatcmpl-") || !reflect.DeepEqual(got, want) {
		t.Errorf("answer\n got %+v\nwant %+v", got, want)
	}
	// The keys OpenAI clients read are all there, nulls included.
	for _, key := range []string{`"logprobs":null`, `"refusal":null`, `"finish_reason":"stop"`, `"total_tokens":10`} {
		if !strings.Contains(string(r.body), key) {
			t.Errorf("answer lacks %s: %s", key, r.body)
		}
	}

	c := b.lastCall(t)
	wantReq := wire.InferenceRequest{
		Messages: []wire.ChatMessage{
			{Role: "system", Content: "Be brief."},
			{Role: "user", Content: "Say hello", Name: "ann"},
			{Role: "assistant", Content: ""},
			{Role: "user", Content: "again"},
		},
		MaxTokens:        ptr(5), // max_completion_tokens wins over the older max_tokens
		Temperature:      ptr(0.0),
		TopK:             ptr(1), // top_p 0 leaves only the most likely token
		Seed:             ptr(uint32(2)),
		Stop:             []string{"\n"},
		FrequencyPenalty: ptr(0.5),
		LogitBias:        map[string]float64{"1": 2},
	}
	if c.model != "alpha" || !reflect.DeepEqual(c.req, wantReq) {
		t.Errorf("worker request\n got %s %s\nwant %s", c.model, js(c.req), js(wantReq))
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestChatStream(t *testing.T) {
	b := newBackend("a", "", "b")
	b.end.StopReason, b.end.TokensIn, b.end.TokensOut = wire.StopMaxTokens, 4, 3
	a := newAPI(t, b, nil)
	r := a.post(t, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":3}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	evs := r.events(t)
	var chunks []ChatChunk
	for _, e := range evs {
		var c ChatChunk
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatalf("chunk %s: %v", e, err)
		}
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") || len(chunks) > 0 && c.ID != chunks[0].ID ||
			c.Model != "m" || c.Created != 1700000000 {
			t.Errorf("chunk header %s", e)
		}
		chunks = append(chunks, c)
	}
	// role, "a", "b" (the empty piece is not sent), finish, usage
	if len(chunks) != 5 {
		t.Fatalf("%d chunks: %v", len(chunks), evs)
	}
	if d := chunks[0].Choices[0].Delta; d.Role != "assistant" || d.Content == nil || *d.Content != "" {
		t.Errorf("first chunk %s", evs[0])
	}
	var text strings.Builder
	for _, c := range chunks[1:3] {
		if c.Choices[0].FinishReason != nil || c.Choices[0].Delta.Role != "" {
			t.Errorf("content chunk %+v", c)
		}
		text.WriteString(*c.Choices[0].Delta.Content)
	}
	if text.String() != "ab" {
		t.Errorf("text %q", text.String())
	}
	if f := chunks[3].Choices[0].FinishReason; f == nil || *f != "length" || chunks[3].Choices[0].Delta.Content != nil {
		t.Errorf("finish chunk %s", evs[3])
	}
	if u := chunks[4].Usage; len(chunks[4].Choices) != 0 || u == nil || *u != (Usage{PromptTokens: 4, CompletionTokens: 3, TotalTokens: 7, PromptTokensDetails: PromptTokensDetails{CachedTokens: 5}}) {
		t.Errorf("usage chunk %s", evs[4])
	}
	for _, e := range evs[:4] {
		if strings.Contains(e, `"usage"`) {
			t.Errorf("usage before the last chunk: %s", e)
		}
	}

	// Without include_usage there is no usage chunk.
	r = a.post(t, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}`)
	if evs := r.events(t); len(evs) != 4 || strings.Contains(r.String(), "usage") {
		t.Errorf("stream without usage: %s", r.body)
	}
}

func (r reply) String() string { return string(r.body) }

func TestFinishReasons(t *testing.T) {
	for stop, want := range map[string]string{
		wire.StopEOS: "stop", wire.StopSequence: "stop", wire.StopMaxTokens: "length", wire.StopContextLimit: "length", wire.StopToolCalls: "tool_calls",
	} {
		b := newBackend("x")
		b.end.StopReason = stop
		a := newAPI(t, b, nil)
		var got ChatCompletion
		r := a.post(t, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"x"}]}`)
		r.decode(t, &got)
		if got.Choices[0].FinishReason != want {
			t.Errorf("%s: finish_reason %q, want %q", stop, got.Choices[0].FinishReason, want)
		}
	}
}

func TestCompletions(t *testing.T) {
	b := newBackend("def", "g")
	a := newAPI(t, b, nil)
	r := a.post(t, "/v1/completions", `{"model":"alpha","prompt":["abc"],"echo":true,"stop":["h","i"],"logprobs":null,"suffix":""}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got Completion
	r.decode(t, &got)
	if !strings.HasPrefix(got.ID, "cmpl-") || got.Object != "text_completion" || len(got.Choices) != 1 ||
		got.Choices[0].Text != "abcdefg" || *got.Choices[0].FinishReason != "stop" || *got.Usage != (Usage{PromptTokens: 7, CompletionTokens: 2, TotalTokens: 9, PromptTokensDetails: PromptTokensDetails{CachedTokens: 5}}) {
		t.Errorf("answer %s", r.body)
	}
	c := b.lastCall(t)
	if c.req.Prompt != "abc" || *c.req.MaxTokens != defaultCompletionTokens || !reflect.DeepEqual(c.req.Stop, []string{"h", "i"}) || c.req.Messages != nil {
		t.Errorf("worker request %s", js(c.req))
	}

	r = a.post(t, "/v1/completions", `{"model":"alpha","prompt":"abc","stream":true,"stream_options":{"include_usage":true},"max_tokens":2}`)
	evs := r.events(t)
	if len(evs) != 4 {
		t.Fatalf("events %v", evs)
	}
	var texts []string
	for _, e := range evs[:3] {
		var c Completion
		_ = json.Unmarshal([]byte(e), &c)
		texts = append(texts, c.Choices[0].Text)
	}
	if !reflect.DeepEqual(texts, []string{"def", "g", ""}) || !strings.Contains(evs[2], `"finish_reason":"stop"`) ||
		!strings.Contains(evs[3], `"choices":[]`) || !strings.Contains(evs[3], `"total_tokens":9`) {
		t.Errorf("stream %v", evs)
	}
	if *b.lastCall(t).req.MaxTokens != 2 {
		t.Errorf("max_tokens %d", *b.lastCall(t).req.MaxTokens)
	}
}
