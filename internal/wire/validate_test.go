package wire

import (
	"strings"
	"testing"
)

// An empty request (no prompt, no messages) used to pass and generate to
// the end of the context; it is refused, naming the prompt.
func TestValidateNeedsSomethingToAnswer(t *testing.T) {
	n := 5
	for _, r := range []InferenceRequest{
		{},
		{Prompt: ""},
		{Messages: []ChatMessage{}},
		{MaxTokens: &n, Stop: []string{"x"}},
	} {
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "prompt is empty") {
			t.Errorf("%+v: %v", r, err)
		}
	}
	for _, r := range []InferenceRequest{
		{Prompt: "a"},
		{Prompt: " "},
		{Messages: []ChatMessage{{Role: "user", Content: ""}}},
	} {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
}
