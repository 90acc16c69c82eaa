package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

// The official OpenAI Go client against a real queen, hive and worker on
// the alphabet model: the first request starts the worker, answers are the
// model's exact greedy text, streams carry usage, stop sequences and
// max_tokens end generation with the right finish_reason, errors have
// OpenAI's shape and status, and API keys guard it all.
func TestOpenAIClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRbee("queen", "start")
	e.mustRbee("hive", "start")
	e.mustRbee("model", "download", e.alphabet) // catalog id "alpha"; no worker yet
	key := strings.TrimSpace(e.mustRbee("key", "create", "--name", "e2e").stdout)
	// The CLI on this machine needs no key.
	e.mustRbee("status")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := e.queenURL + "/v1"
	c := sdk.NewClient(option.WithBaseURL(base), option.WithAPIKey(key), option.WithMaxRetries(0))
	apiErr := func(what string, err error, status int, code string) {
		t.Helper()
		var ae *sdk.Error
		if !errors.As(err, &ae) {
			t.Errorf("%s: %v is not an API error", what, err)
			return
		}
		if ae.StatusCode != status || ae.Code != code || ae.Message == "" || ae.Type == "" {
			t.Errorf("%s: HTTP %d type %q code %q param %q: %s", what, ae.StatusCode, ae.Type, ae.Code, ae.Param, ae.Message)
		}
	}

	// Keys: none, or a wrong one, is a 401 in OpenAI's shape.
	resp, err := http.Post(base+"/chat/completions", "application/json", strings.NewReader(`{"model":"alpha","messages":[{"role":"user","content":"abc"}]}`))
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"invalid_api_key"`) || !strings.Contains(string(body), `"param":null`) {
		t.Errorf("without a key: %d %s", resp.StatusCode, body)
	}
	_, err = c.Models.List(ctx, option.WithAPIKey("rbee_not-a-key"))
	apiErr("wrong key", err, http.StatusUnauthorized, "invalid_api_key")

	// The catalog's model is listed before any worker loads it.
	models, err := c.Models.List(ctx)
	must(t, err)
	if len(models.Data) != 1 || models.Data[0].ID != "alpha" || models.Data[0].OwnedBy != "localhost" || strings.Contains(models.Data[0].RawJSON(), `"loaded":true`) {
		t.Fatalf("models: %+v", models.Data)
	}

	// Chat: the worker renders the conversation (the alphabet model has no
	// chat template, so the plain format) and the answer is exact.
	msgs := []engine.ChatMessage{{Role: "system", Content: "Recite."}, {Role: "user", Content: "abc"}}
	want, eos := testmodel.AlphabetContinuation(engine.PlainChat(msgs), 200)
	if !eos {
		t.Fatalf("the alphabet model does not stop after %q", engine.PlainChat(msgs))
	}
	params := sdk.ChatCompletionNewParams{
		Model:       "alpha",
		Messages:    []sdk.ChatCompletionMessageParamUnion{sdk.SystemMessage("Recite."), sdk.UserMessage("abc")},
		Temperature: sdk.Float(0),
		MaxTokens:   sdk.Int(200),
	}
	chat, err := c.Chat.Completions.New(ctx, params) // starts the worker first
	if err != nil {
		t.Fatalf("chat: %v\nqueen log:\n%s", err, e.log("queen-rbee.log"))
	}
	if got := chat.Choices[0]; got.Message.Content != want || got.FinishReason != "stop" || got.Message.Role != "assistant" {
		t.Errorf("chat: %q (%s), want %q", got.Message.Content, got.FinishReason, want)
	}
	if u := chat.Usage; u.CompletionTokens < int64(len(want)) || u.PromptTokens < int64(len(engine.PlainChat(msgs))) || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("chat usage: %+v", u)
	}
	m, err := c.Models.Get(ctx, "alpha")
	if err != nil || !strings.Contains(m.RawJSON(), `"loaded":true`) {
		t.Errorf("alpha after a request: %v %s", err, m.RawJSON())
	}

	// Streaming, with usage at the end.
	params.StreamOptions = sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc sdk.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		if chunk.Object != "chat.completion.chunk" {
			t.Errorf("chunk object %q", chunk.Object)
		}
		acc.AddChunk(chunk)
		chunks++
	}
	must(t, stream.Err())
	if got := acc.Choices[0]; got.Message.Content != want || got.FinishReason != "stop" || chunks < len(want) {
		t.Errorf("stream: %q (%s) in %d chunks, want %q", got.Message.Content, got.FinishReason, chunks, want)
	}
	if acc.Usage.CompletionTokens != chat.Usage.CompletionTokens || acc.Usage.PromptTokens != chat.Usage.PromptTokens {
		t.Errorf("stream usage %+v, want %+v", acc.Usage, chat.Usage)
	}

	// Stop sequences (never part of the text) and max_tokens.
	cmpl, err := c.Completions.New(ctx, sdk.CompletionNewParams{
		Model: "alpha", Prompt: sdk.CompletionNewParamsPromptUnion{OfString: sdk.String("abc")},
		MaxTokens: sdk.Int(50), Temperature: sdk.Float(0),
		Stop: sdk.CompletionNewParamsStopUnion{OfStringArray: []string{"xyz", "jkl"}},
	})
	must(t, err)
	if got := cmpl.Choices[0]; got.Text != "defghi" || got.FinishReason != "stop" {
		t.Errorf("completion with stop: %q (%s)", got.Text, got.FinishReason)
	}
	cs := c.Completions.NewStreaming(ctx, sdk.CompletionNewParams{
		Model: "alpha", Prompt: sdk.CompletionNewParamsPromptUnion{OfString: sdk.String("abc")},
		MaxTokens: sdk.Int(3), Temperature: sdk.Float(0),
	})
	var text strings.Builder
	finish := ""
	for cs.Next() {
		for _, ch := range cs.Current().Choices {
			text.WriteString(ch.Text)
			if ch.FinishReason != "" {
				finish = string(ch.FinishReason)
			}
		}
	}
	must(t, cs.Err())
	if text.String() != "def" || finish != "length" {
		t.Errorf("streamed completion with max_tokens 3: %q (%s)", text.String(), finish)
	}
	stream = c.Chat.Completions.NewStreaming(ctx, sdk.ChatCompletionNewParams{
		Model: "alpha", Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("abc")},
		Temperature: sdk.Float(0), Stop: sdk.ChatCompletionNewParamsStopUnion{OfString: sdk.String("A")},
	})
	acc = sdk.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	must(t, stream.Err())
	if got := acc.Choices[0]; got.Message.Content != ";<=>?@" || got.FinishReason != "stop" {
		t.Errorf("streamed chat with stop: %q (%s)", got.Message.Content, got.FinishReason)
	}

	// Errors: bad parameters, an unknown model, a request larger than the
	// context (found by the worker), all with OpenAI's status and code.
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{Model: "alpha", Messages: params.Messages, N: sdk.Int(2)})
	apiErr("n=2", err, http.StatusBadRequest, "invalid_value")
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{Model: "alpha", Messages: params.Messages, Temperature: sdk.Float(7)})
	apiErr("temperature 7", err, http.StatusBadRequest, "invalid_value")
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{Model: "no-such-model", Messages: params.Messages})
	apiErr("unknown model", err, http.StatusNotFound, "model_not_found")
	_, err = c.Models.Get(ctx, "no-such-model")
	apiErr("get unknown model", err, http.StatusNotFound, "model_not_found")
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{Model: "alpha", Messages: params.Messages, MaxTokens: sdk.Int(testmodel.AlphabetContext + 1)})
	apiErr("over the context", err, http.StatusBadRequest, wire.CodeContextLength)
	stream = c.Chat.Completions.NewStreaming(ctx, sdk.ChatCompletionNewParams{Model: "no-such-model", Messages: params.Messages})
	for stream.Next() {
		t.Error("a stream for an unknown model sent a chunk")
	}
	apiErr("stream of an unknown model", stream.Err(), http.StatusNotFound, "model_not_found")

	// Every request went to the one worker the first one started.
	ready := 0
	for _, w := range e.status().Workers {
		if w.State == wire.StateReady || w.State == wire.StateBusy {
			ready++
		}
	}
	if ready != 1 {
		t.Errorf("%d workers serve after the requests, want 1", ready)
	}
	e.mustRbee("queen", "stop")
	e.waitNoLeftovers()
}
