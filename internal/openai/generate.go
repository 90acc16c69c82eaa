package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// chunker builds the events of one streamed answer, chat or completion;
// choice is the index of the choice (of the prompt, for completions).
type chunker interface {
	head(choice int) any                // the first event of a choice, before any text; nil: none
	event(choice int, e wire.Event) any // what a token event adds; nil: nothing
	tail(choice int, finishReason string) any
	usage(u *Usage) any
}

// collect runs a request to its end, adding each token event to a, and
// returns the end event.
func (s *Server) collect(ctx context.Context, model string, req wire.InferenceRequest, a *answer) (wire.Event, error) {
	return s.opt.Backend.Generate(ctx, model, req, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			a.add(e)
		}
		return nil
	})
}

// collectAll runs requests at once, each into its answer, and returns
// their end events. The first failure stops the others and is returned.
func (s *Server) collectAll(ctx context.Context, model string, reqs []wire.InferenceRequest, answers []*answer) ([]wire.Event, error) {
	if len(reqs) == 1 {
		end, err := s.collect(ctx, model, reqs[0], answers[0])
		return []wire.Event{end}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ends := make([]wire.Event, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			ends[i], errs[i] = s.collect(ctx, model, reqs[i], answers[i])
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	// The first error that is not another's cancellation says what failed.
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case first == nil:
			first = err
		case errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled):
			first = err
		}
	}
	return ends, first
}

// addUsage sums the token counts of end events.
func addUsage(ends ...wire.Event) wire.Event {
	var sum wire.Event
	for _, e := range ends {
		sum.TokensIn += e.TokensIn
		sum.TokensOut += e.TokensOut
		sum.TokensCached += e.TokensCached
	}
	return sum
}

// stream answers requests (the choices, one after the other) as
// Server-Sent Events in OpenAI's format: one "data: <chunk>" per event,
// then "data: [DONE]".
//
// Nothing is written before the worker's first event, so an error that
// comes before it (bad parameters the worker found, an unknown model, a
// full queue) still gets its HTTP status. Errors after it travel in the
// stream as {"error":{...}}, which the OpenAI clients raise. A client that
// goes away or stops reading ends the request context or fails a write,
// and either stops the generation on the worker.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, model string, reqs []wire.InferenceRequest, c chunker, includeUsage bool) error {
	var (
		sw       *sse.Writer
		writeErr error
	)
	write := func(v any) error {
		if writeErr != nil {
			return writeErr
		}
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_ = sw.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout))
		writeErr = sw.Raw("", data)
		return writeErr
	}
	ends := make([]wire.Event, len(reqs))
	for i, req := range reqs {
		headed := false
		open := func() error {
			if sw == nil {
				sw = sse.NewWriter(w)
			}
			if headed {
				return nil
			}
			headed = true
			if h := c.head(i); h != nil {
				return write(h)
			}
			return nil
		}
		end, err := s.opt.Backend.Generate(r.Context(), model, req, func(e wire.Event) error {
			switch e.Type {
			case wire.TypeToken:
				if err := open(); err != nil {
					return err
				}
				if v := c.event(i, e); v != nil {
					return write(v)
				}
			case wire.TypeEnd:
				return open()
			}
			return nil
		})
		switch {
		case err != nil && sw == nil:
			return err
		case err != nil:
			if writeErr == nil && r.Context().Err() == nil {
				_, body, _ := apiError(s.log, r, err)
				_ = write(body)
				_ = sw.Done()
			}
			return nil
		}
		if open() != nil || write(c.tail(i, finishReason(end.StopReason))) != nil {
			return nil // the client is gone; the generation is over anyway
		}
		ends[i] = end
	}
	if includeUsage && write(c.usage(usage(addUsage(ends...)))) != nil {
		return nil
	}
	_ = sw.Done()
	return nil
}

// answer gathers the token events of one choice: the answer text, the
// reasoning, the tool calls and the log-probabilities.
type answer struct {
	text, reasoning strings.Builder
	calls           []wire.ToolCall
	logprobs        []wire.TokenLogprob
	tracker         callTracker
}

func newAnswer(onlyFirstCall bool) *answer {
	return &answer{tracker: callTracker{onlyFirst: onlyFirstCall}}
}

func (a *answer) add(e wire.Event) {
	a.text.WriteString(e.T)
	a.reasoning.WriteString(e.R)
	a.logprobs = append(a.logprobs, e.Logprobs...)
	if e.Call == nil {
		return
	}
	d, ok := a.tracker.delta(e.Call)
	if !ok {
		return
	}
	if d.Index == len(a.calls) {
		a.calls = append(a.calls, wire.ToolCall{ID: d.ID, Type: "function", Function: wire.ToolCallFunction{Name: d.Function.Name}})
	}
	a.calls[d.Index].Function.Arguments += d.Function.Arguments
}

// reply is the chat message of the answer.
func (a *answer) reply() AssistantReply {
	m := AssistantReply{Role: "assistant", Content: a.text.String(), ReasoningContent: a.reasoning.String(), ToolCalls: a.calls}
	for i := range m.ToolCalls {
		if m.ToolCalls[i].Function.Arguments == "" {
			m.ToolCalls[i].Function.Arguments = "{}"
		}
	}
	return m
}

// callTracker turns the worker's tool-call deltas into OpenAI's: calls
// numbered from 0 in the order they start, an id for each (the worker's,
// or a new one), the type and name on a call's first delta only. With
// parallel_tool_calls false, only the first call is kept.
type callTracker struct {
	onlyFirst bool
	pos       map[int]int // the worker's index -> OpenAI's
	ids       []string
}

// delta is the OpenAI delta of d; false when d's call is dropped.
func (t *callTracker) delta(d *wire.ToolCallDelta) (ToolCallDelta, bool) {
	if t.pos == nil {
		t.pos = map[int]int{}
	}
	i, known := t.pos[d.Index]
	if !known {
		if t.onlyFirst && len(t.ids) > 0 {
			return ToolCallDelta{}, false
		}
		i = len(t.ids)
		t.pos[d.Index] = i
		id := d.ID
		if id == "" {
			id = newID("call_")
		}
		t.ids = append(t.ids, id)
		return ToolCallDelta{Index: i, ID: id, Type: "function", Function: FunctionDelta{Name: d.Name, Arguments: d.Arguments}}, true
	}
	return ToolCallDelta{Index: i, Function: FunctionDelta{Arguments: d.Arguments}}, true
}

// chatLogprobs are the worker's log-probabilities in the chat shape: every
// key present, top_logprobs an empty list rather than absent.
func chatLogprobs(in []wire.TokenLogprob) []TokenLogprob {
	out := make([]TokenLogprob, len(in))
	for i, l := range in {
		out[i] = TokenLogprob{Token: l.Token, Logprob: l.Logprob, Bytes: tokenBytes(l.Bytes, l.Token), TopLogprobs: make([]TopLogprob, len(l.Top))}
		for j, t := range l.Top {
			out[i].TopLogprobs[j] = TopLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: tokenBytes(t.Bytes, t.Token)}
		}
	}
	return out
}

// tokenBytes are a token's UTF-8 bytes: the worker's (a token may hold
// part of a character), else the token's.
func tokenBytes(b []int, token string) []int {
	if b != nil {
		return b
	}
	out := make([]int, len(token))
	for i := range len(token) {
		out[i] = int(token[i])
	}
	return out
}

// legacyLogprobs builds the completions' log-probabilities of one choice
// piece by piece, tracking where each token starts in the choice's text.
type legacyLogprobs struct {
	offset int
}

// add is the completions' shape of in. Each top_logprobs map holds the
// likeliest tokens and the chosen one, so up to logprobs+1 entries, as
// OpenAI's legacy API answers.
func (l *legacyLogprobs) add(in []wire.TokenLogprob) *CompletionLogprobs {
	out := &CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, t := range in {
		out.Tokens = append(out.Tokens, t.Token)
		out.TokenLogprobs = append(out.TokenLogprobs, t.Logprob)
		top := make(map[string]float64, len(t.Top)+1)
		for _, a := range t.Top {
			top[a.Token] = a.Logprob
		}
		top[t.Token] = t.Logprob
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, l.offset)
		l.offset += len(tokenBytes(t.Bytes, t.Token))
	}
	return out
}
