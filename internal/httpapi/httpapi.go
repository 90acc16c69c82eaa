// Package httpapi is the one place where HTTP handlers turn errors into
// {"error":{"code","message"}} bodies, and where request bodies are read
// with a size limit. Every daemon's handlers return errors to Handler.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/rbee/rbee/internal/wire"
)

// MaxBody is the default limit on request bodies.
const MaxBody = 1 << 20

// Error is an error with an HTTP status and a machine-readable code.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with code bad_request.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, wire.CodeBadRequest, format, args...)
}

// NotFound is a 404 with code not_found.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, wire.CodeNotFound, format, args...)
}

// Handler is an http.Handler whose errors are written by WriteError.
type Handler func(w http.ResponseWriter, r *http.Request) error

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		WriteError(w, r, err)
	}
}

// WriteError writes err as an error body. Errors that are not *Error are
// internal: they are logged in full and answered with a generic 500.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status > 599 {
		slog.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: wire.CodeInternal, Message: "internal error"}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	WriteJSON(w, e.Status, wire.ErrorBody{Error: wire.ErrorDetail{Code: e.Code, Message: e.Message}})
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
			return Errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		case errors.Is(err, io.EOF):
			return BadRequest("request body is empty")
		default:
			return BadRequest("malformed JSON: %v", err)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, wire.CodeTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		}
		return BadRequest("malformed JSON: trailing data after the object")
	}
	return nil
}
