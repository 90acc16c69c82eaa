package openai

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/rbee/rbee/internal/wire"
)

// chatRequest is the subset of POST /v1/chat/completions that rbee reads.
// Every other field an OpenAI client sends (tools, logit_bias, user, ...)
// is accepted and ignored.
type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	MaxTokens           *int64         `json:"max_tokens"`
	MaxCompletionTokens *int64         `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	Seed                *int64         `json:"seed"`
	Stop                stopList       `json:"stop"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	N                   *int64         `json:"n"`
}

// chatMessage is one message of a conversation. Content is a string, null
// (an assistant turn that only called tools), or a list of parts.
type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// contentPart is one part of a message's content list.
type contentPart struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Refusal string `json:"refusal"`
}

// completionRequest is the subset of POST /v1/completions that rbee reads.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int64          `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Seed          *int64          `json:"seed"`
	Stop          stopList        `json:"stop"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
	N             *int64          `json:"n"`
	BestOf        *int64          `json:"best_of"`
	Echo          bool            `json:"echo"`
	Suffix        *string         `json:"suffix"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// stopList is "stop": a string, a list of strings, or null.
type stopList []string

func (s *stopList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = stopList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("stop must be a string or a list of strings")
	}
	*s = many
	return nil
}

// Usage counts the tokens of one request.
type Usage struct {
	PromptTokens        int                 `json:"prompt_tokens"`
	CompletionTokens    int                 `json:"completion_tokens"`
	TotalTokens         int                 `json:"total_tokens"`
	PromptTokensDetails PromptTokensDetails `json:"prompt_tokens_details"`
}

// PromptTokensDetails says how many prompt tokens the worker's prompt cache
// served, as OpenAI reports its own prompt caching.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

func usage(end wire.Event) *Usage {
	return &Usage{PromptTokens: end.TokensIn, CompletionTokens: end.TokensOut, TotalTokens: end.TokensIn + end.TokensOut,
		PromptTokensDetails: PromptTokensDetails{CachedTokens: end.TokensCached}}
}

// ChatCompletion is the answer of a chat completion without stream.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"` // "chat.completion"
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage"`
}

// ChatChoice is the one choice of a ChatCompletion.
type ChatChoice struct {
	Index        int             `json:"index"`
	Message      AssistantReply  `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null
	FinishReason string          `json:"finish_reason"`
}

// AssistantReply is the generated message.
type AssistantReply struct {
	Role    string  `json:"role"` // "assistant"
	Content string  `json:"content"`
	Refusal *string `json:"refusal"` // always null
}

// ChatChunk is one event of a streamed chat completion.
type ChatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"` // "chat.completion.chunk"
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []ChatChunkChoice `json:"choices"`
	// Usage is null on every chunk but the last when the client asked for
	// it with stream_options.include_usage, and absent otherwise.
	Usage *Usage `json:"usage,omitempty"`
}

// ChatChunkChoice is the one choice of a chunk.
type ChatChunkChoice struct {
	Index        int             `json:"index"`
	Delta        ChatDelta       `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// ChatDelta is what a chunk adds to the message.
type ChatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// Completion is the answer of POST /v1/completions, and each event of its
// stream.
type Completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"` // "text_completion"
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is the one choice of a Completion.
type CompletionChoice struct {
	Text         string          `json:"text"`
	Index        int             `json:"index"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason *string         `json:"finish_reason"`
}

// Model is one entry of GET /v1/models. OwnedBy is the first hive (by
// name) whose catalog has the model; Hives lists them all.
type Model struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"` // "model"
	Created int64    `json:"created"`
	OwnedBy string   `json:"owned_by"`
	Hives   []string `json:"hives"`
	// Loaded says whether a worker serves the model now; a request for a
	// model that is not loaded starts a worker first.
	Loaded bool `json:"loaded"`
}

// ModelList is the answer of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"` // "list"
	Data   []Model `json:"data"`
}

// null is the JSON null that OpenAI answers carry for logprobs.
var null = json.RawMessage("null")
