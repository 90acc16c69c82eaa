package worker

import (
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/generate"
	"github.com/rbee/rbee/internal/wire"
)

// Sampling defaults when a request leaves a field out; they follow
// llama.cpp's own defaults.
const (
	defaultTemperature = 0.8
	defaultTopK        = 40
	defaultTopP        = 0.95
	defaultMinP        = 0.05
)

// prepare validates a request and tokenizes its prompt. Every error is a 400
// that names the offending field.
func prepare(m engine.Model, req wire.InferenceRequest, newSeed func() uint32) (generate.Request, error) {
	var g generate.Request
	bad := wire.BadRequest
	if err := req.Validate(); err != nil {
		return g, bad("%v", err)
	}
	s := engine.Sampling{Temperature: defaultTemperature, TopK: defaultTopK, TopP: defaultTopP, MinP: defaultMinP, RepetitionPenalty: 1}
	set := func(dst *float32, v *float64) {
		if v != nil {
			*dst = float32(*v)
		}
	}
	set(&s.Temperature, req.Temperature)
	set(&s.TopP, req.TopP)
	set(&s.MinP, req.MinP)
	set(&s.RepetitionPenalty, req.RepetitionPenalty)
	if req.TopK != nil {
		s.TopK = int32(*req.TopK)
	}
	s.Seed = newSeed()
	if req.Seed != nil {
		s.Seed = *req.Seed
	}

	prompt := req.Prompt
	if len(req.Messages) > 0 {
		msgs := make([]engine.ChatMessage, len(req.Messages))
		for i, msg := range req.Messages {
			msgs[i] = engine.ChatMessage{Role: msg.Role, Content: msg.Content}
		}
		var err error
		if prompt, err = m.ChatPrompt(msgs); err != nil {
			return g, bad("cannot render the conversation: %v", err)
		}
	}
	toks, err := m.Tokenize(prompt)
	if err != nil {
		return g, bad("cannot tokenize the prompt: %v", err)
	}
	ctx := m.Info().CtxSize
	room := ctx - len(toks)
	if room < 1 {
		return g, wire.Errorf(wire.CodeContextLength, "the prompt is %d tokens; the context holds %d", len(toks), ctx)
	}
	max := room
	if req.MaxTokens != nil {
		switch n := *req.MaxTokens; {
		case n > room:
			return g, wire.Errorf(wire.CodeContextLength,
				"max_tokens %d does not fit: the prompt is %d tokens and the context holds %d (at most %d new tokens)", n, len(toks), ctx, room)
		default:
			max = n
		}
	}
	return generate.Request{Prompt: toks, MaxTokens: max, Sampling: s, Stop: req.Stop}, nil
}
