package wire

import (
	"errors"
	"fmt"
	"math"
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
		size += len(m.Content)
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
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
