package worker

import (
	"strconv"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/generate"
	"github.com/rbee/rbee/internal/toolcall"
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

// prepare validates a request, renders and tokenizes its prompt, and says
// how to read its output (nil: plain text). Every error is a 400 that
// names the offending field.
func prepare(m engine.Model, c *chat, req wire.InferenceRequest, newSeed func() uint32) (generate.Request, *parsing, error) {
	var g generate.Request
	bad := wire.BadRequest
	if err := req.Validate(); err != nil {
		return g, nil, bad("%v", err)
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
	set(&s.PresencePenalty, req.PresencePenalty)
	set(&s.FrequencyPenalty, req.FrequencyPenalty)
	s.Logprobs = req.Logprobs
	if req.TopLogprobs != nil {
		s.TopLogprobs = *req.TopLogprobs
	}
	vocab := m.Info().VocabSize
	for k, v := range req.LogitBias {
		id, _ := strconv.Atoi(k) // Validate checked it
		if id >= vocab {
			return g, nil, bad("logit_bias: token %d is outside the model's vocabulary of %d", id, vocab)
		}
		if s.LogitBias == nil {
			s.LogitBias = map[engine.Token]float32{}
		}
		s.LogitBias[engine.Token(id)] = float32(v)
	}

	if c == nil {
		c = &chat{format: toolcall.Generic}
	}
	r, err := c.render(m, req)
	if err != nil {
		return g, nil, err
	}
	s.Grammar = r.grammar
	toks, err := m.Tokenize(r.prompt)
	if err != nil {
		return g, nil, bad("cannot tokenize the prompt: %v", err)
	}
	ctx := m.Info().CtxSize
	room := ctx - len(toks)
	if room < 1 {
		return g, nil, wire.Errorf(wire.CodeContextLength, "the prompt is %d tokens; the context holds %d", len(toks), ctx)
	}
	max := room
	if req.MaxTokens != nil {
		switch n := *req.MaxTokens; {
		case n > room:
			return g, nil, wire.Errorf(wire.CodeContextLength,
				"max_tokens %d does not fit: the prompt is %d tokens and the context holds %d (at most %d new tokens)", n, len(toks), ctx, room)
		default:
			max = n
		}
	}
	return generate.Request{Prompt: toks, MaxTokens: max, Sampling: s, Stop: req.Stop, Special: r.special}, r.parse, nil
}
