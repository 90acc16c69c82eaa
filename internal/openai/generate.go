package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
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
