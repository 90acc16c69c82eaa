// Package httpapi is the one place where HTTP handlers turn errors into
// {"error":{"code","message"}} bodies, and where request bodies are read
// with a size limit. Every daemon's handlers return errors to Handler.
package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rbee/rbee/internal/wire"
)

// MaxBody is the default limit on request bodies.
const MaxBody = 1 << 20

// Handler is an http.Handler whose errors are written by WriteError.
type Handler func(w http.ResponseWriter, r *http.Request) error

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		WriteError(w, r, err)
	}
}

// WriteError writes err in the job protocol's shape,
// {"error":{"code","message"}}, with the status of its *wire.Error. Other
// errors are internal: they are logged in full and answered with a generic
// 500.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := wire.AsError(err)
	if !ok {
		slog.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = wire.Errorf(wire.CodeInternal, "internal error")
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	WriteJSON(w, e.HTTPStatus(), wire.ErrorBody{Error: wire.ErrorDetail{Code: e.Code, Message: e.Message}})
}

// WriteJSON writes v as a JSON body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// DecodeJSON reads at most limit bytes of r's body into v. Unknown fields are
// an error, so a misspelt parameter is not silently ignored. Oversized bodies
// are 413; malformed ones are 400.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return wire.Errorf(wire.CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return wire.BadRequest("request body is empty")
		case IsTimeout(err):
			return wire.Errorf(wire.CodeRequestTimeout, "the request body did not arrive in time")
		default:
			return wire.BadRequest("malformed JSON: %v", err)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return wire.Errorf(wire.CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		}
		if IsTimeout(err) {
			return wire.Errorf(wire.CodeRequestTimeout, "the request body did not arrive in time")
		}
		return wire.BadRequest("malformed JSON: trailing data after the object")
	}
	return nil
}
