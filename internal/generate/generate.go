// Package generate runs one generation on an engine sequence: prompt
// evaluation, the token loop, stop sequences, UTF-8-safe text pieces,
// cancellation and timings. It knows nothing of HTTP.
package generate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/wire"
)

// Request is one generation, already validated and tokenized.
type Request struct {
	Prompt    []engine.Token
	MaxTokens int
	Sampling  engine.Sampling
	Stop      []string
	// Special renders control tokens as their text (tool-call markers
	// such as [TOOL_CALLS]) where the model can; they are nothing else.
	Special bool
}

// Piece is text to send, with the log-probabilities of the tokens it
// completes when Sampling.Logprobs asked for them.
type Piece struct {
	Text     string
	Logprobs []wire.TokenLogprob
}

// Result summarises a finished generation.
type Result struct {
	StopReason string
	TokensIn   int
	TokensOut  int
	// TokensCached is how many of TokensIn the prompt cache served.
	TokensCached int
	Timings      wire.Timings
}

// Run generates on a new sequence of m and calls emit with each text piece.
// A cancelled ctx ends the run after the token in flight, with stop reason
// "cancelled" and a nil error. A context that fills up while generating ends
// it with stop reason "context_limit". emit errors and engine errors (a token
// the model cannot render, a failed decode) end the run and are returned.
func Run(ctx context.Context, m engine.Model, req Request, emit func(Piece) error) (Result, error) {
	start := time.Now()
	res := Result{TokensIn: len(req.Prompt)}
	if req.MaxTokens < 1 {
		return res, fmt.Errorf("max_tokens must be at least 1, got %d", req.MaxTokens)
	}
	seq, err := m.NewSequence(req.Sampling)
	if err != nil {
		return res, err
	}
	defer seq.Close()

	if err := seq.Prefill(ctx, req.Prompt); err != nil {
		if ctx.Err() != nil {
			res.StopReason = wire.StopCancelled
			return res, nil
		}
		return res, err
	}
	prefilled := time.Now()
	res.TokensCached = seq.Cached()

	out := textOut{stops: req.Stop}
	render := m.Piece
	if sp, ok := m.(engine.SpecialPiecer); ok && req.Special {
		render = sp.SpecialPiece
	}
	lp, _ := seq.(engine.Logprobber)
	var pending []wire.TokenLogprob
	var first, last time.Time
	stop := func(reason string) (Result, error) {
		if reason != wire.StopSequence && reason != wire.StopCancelled {
			if s := out.flush(); s != "" || len(pending) > 0 {
				if err := emit(Piece{Text: s, Logprobs: pending}); err != nil {
					return res, err
				}
			}
		}
		res.StopReason = reason
		res.Timings = timings(start, prefilled, first, last, res)
		return res, nil
	}
	for {
		if ctx.Err() != nil {
			return stop(wire.StopCancelled)
		}
		tok := seq.Sample()
		if m.IsEOG(tok) {
			return stop(wire.StopEOS)
		}
		// An empty piece in place of one the engine cannot render would
		// hand the client wrong text that looks right.
		piece, err := render(tok)
		if err != nil {
			return res, fmt.Errorf("rendering the sampled token: %w", err)
		}
		if req.Sampling.Logprobs && lp != nil {
			pending = append(pending, logprob(m, piece, lp.LastLogprobs()))
		}
		last = time.Now()
		if res.TokensOut == 0 {
			first = last
		}
		res.TokensOut++
		text, stopped := out.add(piece)
		if text != "" {
			if err := emit(Piece{Text: text, Logprobs: pending}); err != nil {
				return res, err
			}
			pending = nil
		}
		if stopped {
			return stop(wire.StopSequence)
		}
		if res.TokensOut >= req.MaxTokens {
			return stop(wire.StopMaxTokens)
		}
		if err := seq.Decode(tok); err != nil {
			if errors.Is(err, engine.ErrContextFull) {
				return stop(wire.StopContextLimit)
			}
			return res, err
		}
	}
}

// logprob is a sampled token's log-probabilities in the API's shape.
func logprob(m engine.Model, piece []byte, l engine.TokenLogprobs) wire.TokenLogprob {
	out := wire.TokenLogprob{Token: string(piece), Logprob: float64(l.Chosen.Logprob), Bytes: byteList(piece)}
	for _, t := range l.Top {
		p, err := m.Piece(t.Token)
		if err != nil {
			continue
		}
		out.Top = append(out.Top, wire.TopLogprob{Token: string(p), Logprob: float64(t.Logprob), Bytes: byteList(p)})
	}
	return out
}

func byteList(b []byte) []int {
	out := make([]int, len(b))
	for i, c := range b {
		out[i] = int(c)
	}
	return out
}

func timings(start, prefilled, first, last time.Time, r Result) wire.Timings {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	t := wire.Timings{
		PromptMs: ms(prefilled.Sub(start)),
		TotalMs:  ms(time.Since(start)),
	}
	if t.PromptMs > 0 {
		t.PromptTPS = float64(r.TokensIn) / (t.PromptMs / 1000)
	}
	if !first.IsZero() {
		t.TTFTMs = ms(first.Sub(start))
		t.DecodeMs = ms(last.Sub(first))
		if r.TokensOut > 1 && t.DecodeMs > 0 {
			t.DecodeTPS = float64(r.TokensOut-1) / (t.DecodeMs / 1000)
		}
	}
	return t
}
