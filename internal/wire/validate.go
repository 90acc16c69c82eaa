package wire

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// Limits on an inference request that hold whatever the model.
const (
	MaxPromptBytes = 512 << 10
	MaxStops       = 16
	MaxStopBytes   = 256
	MaxTopK        = 1 << 20
	MaxMessages    = 4096
	MaxRoleBytes   = 64
	MaxTimeoutMs   = 3_600_000
)

// Validate checks the ranges of every field that is set, and that there is
// something to answer: a non-empty prompt or at least one message (an empty
// request would otherwise generate to the end of the context). It is the one
// check of every inference request: the worker's, the queen's infer job and
// the OpenAI API's. Whether the prompt and max_tokens fit the context is the
// worker's to say: only it has the tokenizer.
func (r InferenceRequest) Validate() error {
	if r.Prompt == "" && len(r.Messages) == 0 {
		return errors.New("prompt is empty: give a prompt, or messages")
	}
	if len(r.Prompt) > MaxPromptBytes {
		return fmt.Errorf("prompt is %d bytes; the limit is %d", len(r.Prompt), MaxPromptBytes)
	}
	if len(r.Messages) > 0 && r.Prompt != "" {
		return fmt.Errorf("give either prompt or messages, not both")
	}
	if len(r.Messages) > MaxMessages {
		return fmt.Errorf("at most %d messages, got %d", MaxMessages, len(r.Messages))
	}
	size := 0
	for i, m := range r.Messages {
		if m.Role == "" || len(m.Role) > MaxRoleBytes {
			return fmt.Errorf("messages[%d].role must be 1 to %d bytes", i, MaxRoleBytes)
		}
		size += len(m.Content) + len(m.ReasoningContent)
		for _, c := range m.ToolCalls {
			size += len(c.Function.Name) + len(c.Function.Arguments)
		}
	}
	if size > MaxPromptBytes {
		return fmt.Errorf("the messages hold %d bytes; the limit is %d", size, MaxPromptBytes)
	}
	if v := r.MaxTokens; v != nil && *v < 1 {
		return fmt.Errorf("max_tokens must be at least 1, got %d", *v)
	}
	if v := r.Temperature; v != nil && (!finite(*v) || *v < 0 || *v > 100) {
		return fmt.Errorf("temperature must be a number from 0 to 100, got %v", *v)
	}
	if v := r.TopP; v != nil && (!finite(*v) || *v <= 0 || *v > 1) {
		return fmt.Errorf("top_p must be in (0, 1], got %v", *v)
	}
	if v := r.MinP; v != nil && (!finite(*v) || *v < 0 || *v > 1) {
		return fmt.Errorf("min_p must be in [0, 1], got %v", *v)
	}
	if v := r.TopK; v != nil && (*v < 0 || *v > MaxTopK) {
		return fmt.Errorf("top_k must be from 0 (off) to %d, got %d", MaxTopK, *v)
	}
	if v := r.RepetitionPenalty; v != nil && (!finite(*v) || *v <= 0 || *v > 10) {
		return fmt.Errorf("repetition_penalty must be in (0, 10], got %v", *v)
	}
	if v := r.TimeoutMs; v != nil && (*v < 1 || *v > MaxTimeoutMs) {
		return fmt.Errorf("timeout_ms must be from 1 to %d, got %d", MaxTimeoutMs, *v)
	}
	if len(r.Stop) > MaxStops {
		return fmt.Errorf("at most %d stop sequences, got %d", MaxStops, len(r.Stop))
	}
	for _, s := range r.Stop {
		if s == "" || len(s) > MaxStopBytes {
			return fmt.Errorf("stop sequences must be 1 to %d bytes", MaxStopBytes)
		}
	}
	return r.validateTools()
}

// Bounds of the sampler and tool fields.
const (
	MaxTopLogprobs = 20
	MaxLogitBias   = 1024
	MaxTools       = 128
	MaxSchemaBytes = 256 << 10
)

func (r InferenceRequest) validateTools() error {
	for name, v := range map[string]*float64{"presence_penalty": r.PresencePenalty, "frequency_penalty": r.FrequencyPenalty} {
		if v != nil && (!finite(*v) || *v < -2 || *v > 2) {
			return fmt.Errorf("%s must be from -2 to 2, got %v", name, *v)
		}
	}
	if len(r.LogitBias) > MaxLogitBias {
		return fmt.Errorf("logit_bias holds %d tokens; the limit is %d", len(r.LogitBias), MaxLogitBias)
	}
	for tok, v := range r.LogitBias {
		if id, err := strconv.ParseInt(tok, 10, 32); err != nil || id < 0 {
			return fmt.Errorf("logit_bias keys must be token ids, got %q", tok)
		}
		if !finite(v) || v < -100 || v > 100 {
			return fmt.Errorf("logit_bias values must be from -100 to 100, got %v for token %s", v, tok)
		}
	}
	if v := r.TopLogprobs; v != nil && (*v < 0 || *v > MaxTopLogprobs) {
		return fmt.Errorf("top_logprobs must be from 0 to %d, got %d", MaxTopLogprobs, *v)
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case FormatText, FormatJSONObject:
		case FormatJSONSchema:
			if len(f.Schema) == 0 || len(f.Schema) > MaxSchemaBytes {
				return fmt.Errorf("response_format json_schema needs a schema of at most %d bytes", MaxSchemaBytes)
			}
		default:
			return fmt.Errorf("response_format.type must be text, json_object or json_schema, got %q", f.Type)
		}
	}
	if len(r.Tools) > MaxTools {
		return fmt.Errorf("at most %d tools, got %d", MaxTools, len(r.Tools))
	}
	if len(r.Tools) > 0 && len(r.Messages) == 0 {
		return fmt.Errorf("tools need messages (a chat), not a prompt")
	}
	names := map[string]bool{}
	for i, t := range r.Tools {
		if t.Type != "function" {
			return fmt.Errorf("tools[%d].type must be \"function\", got %q", i, t.Type)
		}
		if err := checkToolName(t.Function.Name); err != nil {
			return fmt.Errorf("tools[%d].function.name: %v", i, err)
		}
		if names[t.Function.Name] {
			return fmt.Errorf("tools[%d]: a second function named %q", i, t.Function.Name)
		}
		names[t.Function.Name] = true
		if len(t.Function.Parameters) > MaxSchemaBytes {
			return fmt.Errorf("tools[%d].function.parameters is over %d bytes", i, MaxSchemaBytes)
		}
	}
	if c := r.ToolChoice; c != nil {
		switch c.Mode {
		case ToolChoiceNone, ToolChoiceAuto:
		case ToolChoiceRequired:
			if len(r.Tools) == 0 {
				return fmt.Errorf("tool_choice required needs tools")
			}
		case ToolChoiceFunction:
			if !names[c.Name] {
				return fmt.Errorf("tool_choice names function %q, which is not among the tools", c.Name)
			}
		default:
			return fmt.Errorf("tool_choice must be none, auto, required or a function, got %q", c.Mode)
		}
	}
	return nil
}

// checkToolName accepts OpenAI's function names: 1 to 64 of a-z, A-Z, 0-9,
// underscores and dashes.
func checkToolName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("must be 1 to 64 characters, got %d", len(s))
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("%q: only letters, digits, '_', '-' and '.'", s)
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
