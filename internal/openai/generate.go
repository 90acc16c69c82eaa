package openai

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/sse"
	"github.com/rbee/rbee/internal/wire"
)

// chunker builds the events of one streamed answer, chat or completion.
type chunker interface {
	head() any // the first event, before any text; nil: none
	piece(text string) any
	tail(finishReason string) any
	usage(u *Usage) any
}

// collect runs a request to its end and returns the text and the end event.
func (s *Server) collect(r *http.Request, model string, req wire.InferenceRequest) (string, wire.Event, error) {
	var text strings.Builder
	end, err := s.opt.Backend.Generate(r.Context(), model, req, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			text.WriteString(e.T)
		}
		return nil
	})
	return text.String(), end, err
}

// stream answers a request as Server-Sent Events in OpenAI's format: one
// "data: <chunk>" per event, then "data: [DONE]".
//
// Nothing is written before the worker's first event, so an error that
// comes before it (bad parameters the worker found, an unknown model, a
// full queue) still gets its HTTP status. Errors after it travel in the
// stream as {"error":{...}}, which the OpenAI clients raise. A client that
// goes away or stops reading ends the request context or fails a write,
// and either stops the generation on the worker.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, model string, req wire.InferenceRequest, c chunker, includeUsage bool) error {
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
	open := func() error {
		if sw != nil {
			return nil
		}
		sw = sse.NewWriter(w)
		if h := c.head(); h != nil {
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
			if e.T == "" {
				return nil
			}
			return write(c.piece(e.T))
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
	if err := open(); err != nil {
		return nil // the client is gone; the generation is over anyway
	}
	if write(c.tail(finishReason(end.StopReason))) != nil {
		return nil
	}
	if includeUsage && write(c.usage(usage(end))) != nil {
		return nil
	}
	_ = sw.Done()
	return nil
}
