package openai

import (
	"bytes"
	"encoding/json"

	"github.com/rbee/rbee/internal/wire"
)

// chatRequest is POST /v1/chat/completions. Every field OpenAI defines is
// either read here or listed in fields.go as refused or ignored on purpose.
type chatRequest struct {
	Model               string        `json:"model"`
	Messages            []chatMessage `json:"messages"`
	MaxTokens           *int64        `json:"max_tokens"`
	MaxCompletionTokens *int64        `json:"max_completion_tokens"`
	sampler
	Logprobs          *bool           `json:"logprobs"`
	TopLogprobs       *int64          `json:"top_logprobs"`
	ResponseFormat    *responseFormat `json:"response_format"`
	Tools             []toolParam     `json:"tools"`
	ToolChoice        json.RawMessage `json:"tool_choice"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls"`
	ReasoningEffort   *string         `json:"reasoning_effort"`
	Stream            bool            `json:"stream"`
	StreamOptions     *streamOptions  `json:"stream_options"`
}

// sampler are the sampling fields chat and completions share, OpenAI's and
// rbee's extensions (top_k, min_p, repetition_penalty and llama.cpp's name
// for it, repeat_penalty).
type sampler struct {
	Temperature       *float64           `json:"temperature"`
	TopP              *float64           `json:"top_p"`
	Seed              *int64             `json:"seed"`
	Stop              stopList           `json:"stop"`
	N                 *int64             `json:"n"`
	PresencePenalty   *float64           `json:"presence_penalty"`
	FrequencyPenalty  *float64           `json:"frequency_penalty"`
	LogitBias         map[string]float64 `json:"logit_bias"`
	TopK              *int64             `json:"top_k"`
	MinP              *float64           `json:"min_p"`
	RepetitionPenalty *float64           `json:"repetition_penalty"`
	RepeatPenalty     *float64           `json:"repeat_penalty"`
}

// chatMessage is one message of a conversation. Content is a string, null
// (an assistant turn that only called tools), or a list of parts.
type chatMessage struct {
	Role             string            `json:"role"`
	Content          json.RawMessage   `json:"content"`
	Name             string            `json:"name"`
	ToolCalls        []messageToolCall `json:"tool_calls"`
	ToolCallID       string            `json:"tool_call_id"`
	ReasoningContent string            `json:"reasoning_content"`
	Refusal          *string           `json:"refusal"`
	Audio            json.RawMessage   `json:"audio"`
	FunctionCall     json.RawMessage   `json:"function_call"`
}

// messageToolCall is a call in an assistant message of the conversation.
// Arguments is JSON text in a string, as OpenAI sends it; a JSON object
// (as some clients send) is taken as its text.
type messageToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

// contentPart is one part of a message's content list.
type contentPart struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Refusal string `json:"refusal"`
}

// toolParam is one entry of tools: {"type":"function","function":{...}}.
type toolParam struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// responseFormat is response_format: {"type":"text"|"json_object"} or
// {"type":"json_schema","json_schema":{"name","schema","strict"}}.
type responseFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
	} `json:"json_schema"`
}

// completionRequest is POST /v1/completions.
type completionRequest struct {
	Model     string          `json:"model"`
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int64          `json:"max_tokens"`
	sampler
	Logprobs       *int64          `json:"logprobs"`
	ResponseFormat *responseFormat `json:"response_format"`
	Stream         bool            `json:"stream"`
	StreamOptions  *streamOptions  `json:"stream_options"`
	BestOf         *int64          `json:"best_of"`
	Echo           bool            `json:"echo"`
	Suffix         *string         `json:"suffix"`
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
		return fieldError{"stop", "stop must be a string or a list of strings"}
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
	Index        int            `json:"index"`
	Message      AssistantReply `json:"message"`
	Logprobs     *ChatLogprobs  `json:"logprobs"` // null unless asked for
	FinishReason string         `json:"finish_reason"`
}

// AssistantReply is the generated message.
type AssistantReply struct {
	Role string `json:"role"` // "assistant"
	// Content is written as null when the answer is only tool calls.
	Content string `json:"content"`
	// ReasoningContent is what a reasoning model thought (its <think>
	// block), as DeepSeek's and vLLM's APIs name it.
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ToolCalls        []wire.ToolCall `json:"tool_calls,omitempty"`
	Refusal          *string         `json:"refusal"` // always null
}

// MarshalJSON writes content null when the answer is only tool calls, as
// OpenAI does.
func (m AssistantReply) MarshalJSON() ([]byte, error) {
	type plain AssistantReply
	out := struct {
		plain
		Content *string `json:"content"`
	}{plain: plain(m)}
	if m.Content != "" || len(m.ToolCalls) == 0 {
		out.Content = &m.Content
	}
	return json.Marshal(out)
}

// ChatLogprobs are the log-probabilities of a chat answer's tokens.
type ChatLogprobs struct {
	Content []TokenLogprob `json:"content"`
	Refusal []TokenLogprob `json:"refusal"` // always null
}

// TokenLogprob is one generated token with its log-probability and, when
// top_logprobs asked for them, the likeliest tokens at its place.
type TokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []TopLogprob `json:"top_logprobs"`
}

// TopLogprob is one of the likeliest tokens at a place.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
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
	Index        int           `json:"index"`
	Delta        ChatDelta     `json:"delta"`
	Logprobs     *ChatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

// ChatDelta is what a chunk adds to the message.
type ChatDelta struct {
	Role             string          `json:"role,omitempty"`
	Content          *string         `json:"content,omitempty"`
	ReasoningContent *string         `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCallDelta `json:"tool_calls,omitempty"`
}

// ToolCallDelta is a piece of a streamed tool call, as OpenAI streams
// them: the first piece of a call has its index, id, type and name (and
// empty arguments), later ones the index and a piece of the arguments.
type ToolCallDelta struct {
	Index    int           `json:"index"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function FunctionDelta `json:"function"`
}

// FunctionDelta is the function part of a ToolCallDelta.
type FunctionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
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
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *CompletionLogprobs `json:"logprobs"` // null unless asked for
	FinishReason *string             `json:"finish_reason"`
}

// CompletionLogprobs are the legacy completions' log-probabilities: one
// entry per token in each list. TopLogprobs maps the likeliest tokens at
// each place to theirs; TextOffset is where each token starts in the
// choice's text (in bytes, the echoed prompt included).
type CompletionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
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
