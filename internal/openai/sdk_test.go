package openai

import (
	"context"
	"errors"
	"net/http"
	"testing"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/rbee/rbee/internal/wire"
)

// The official client reads every answer shape of the API: here against
// the fake backend, in e2e/openai_test.go against a real queen and worker.
func TestOfficialClient(t *testing.T) {
	b := newBackend("Hi", " there")
	b.models = []Model{{ID: "alpha", Hives: []string{"localhost"}, Loaded: true}}
	a := newAPI(t, b, func(o *Options) { o.Keys = fakeKeys{keys: map[string]string{"rbee_k": "k1"}} })
	c := sdk.NewClient(option.WithBaseURL(a.srv.URL+"/v1"), option.WithAPIKey("rbee_k"), option.WithMaxRetries(0))
	ctx := context.Background()

	chat, err := c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{
		Model:    "alpha",
		Messages: []sdk.ChatCompletionMessageParamUnion{sdk.SystemMessage("be nice"), sdk.UserMessage("hello")},
		Stop:     sdk.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"x", "y"}},
		Seed:     sdk.Int(42),
	})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "Hi there" || chat.Choices[0].FinishReason != "stop" || chat.Usage.TotalTokens != 9 ||
		chat.Usage.PromptTokensDetails.CachedTokens != 5 {
		t.Errorf("chat: %s", chat.RawJSON())
	}

	stream := c.Chat.Completions.NewStreaming(ctx, sdk.ChatCompletionNewParams{
		Model:         "alpha",
		Messages:      []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("hello")},
		StreamOptions: sdk.ChatCompletionStreamOptionsParam{IncludeUsage: sdk.Bool(true)},
	})
	var acc sdk.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != "Hi there" || acc.Choices[0].FinishReason != "stop" || acc.Usage.CompletionTokens != 2 ||
		acc.Usage.PromptTokensDetails.CachedTokens != 5 {
		t.Errorf("accumulated stream: %+v", acc.ChatCompletion)
	}

	cmpl, err := c.Completions.New(ctx, sdk.CompletionNewParams{
		Model:  "alpha",
		Prompt: sdk.CompletionNewParamsPromptUnion{OfString: sdk.String("abc")},
	})
	if err != nil || cmpl.Choices[0].Text != "Hi there" {
		t.Errorf("completion: %v %+v", err, cmpl)
	}

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "alpha" || models.Data[0].OwnedBy != "localhost" {
		t.Errorf("models: %v %+v", err, models)
	}
	m, err := c.Models.Get(ctx, "alpha")
	if err != nil || m.ID != "alpha" {
		t.Errorf("model: %v %+v", err, m)
	}

	// Errors come out as *sdk.Error with the status, code and param.
	check := func(what string, err error, status int, code, param string) {
		t.Helper()
		var apiErr *sdk.Error
		if !errors.As(err, &apiErr) {
			t.Errorf("%s: %v is no API error", what, err)
			return
		}
		if apiErr.StatusCode != status || apiErr.Code != code || apiErr.Param != param || apiErr.Message == "" {
			t.Errorf("%s: %d code %q param %q: %s", what, apiErr.StatusCode, apiErr.Code, apiErr.Param, apiErr.Message)
		}
	}
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{
		Model: "alpha", Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("x")}, N: sdk.Int(2),
	})
	check("n=2", err, http.StatusBadRequest, wire.CodeInvalidValue, "n")
	_, err = c.Models.List(ctx, option.WithAPIKey("rbee_wrong"))
	check("wrong key", err, http.StatusUnauthorized, wire.CodeInvalidAPIKey, "")

	b.err = wire.Errorf(wire.CodeUnknownModel, "no live hive has model %q", "nope")
	_, err = c.Chat.Completions.New(ctx, sdk.ChatCompletionNewParams{
		Model: "nope", Messages: []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage("x")},
	})
	check("unknown model", err, http.StatusNotFound, wire.CodeModelNotFound, "model")
}
