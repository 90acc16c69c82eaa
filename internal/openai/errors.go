package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rbee/rbee/internal/wire"
)

// OpenAI error types, chosen from the HTTP status.
const (
	typeInvalidRequest = "invalid_request_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// errorBody is {"error":{"message","type","param","code"}}, every key
// present, as OpenAI clients expect.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// badParam is a 400 for one request field.
func badParam(param, format string, args ...any) *wire.Error {
	return &wire.Error{Code: wire.CodeInvalidValue, Param: param, Message: fmt.Sprintf(format, args...)}
}

func modelNotFound(model string) *wire.Error {
	return &wire.Error{Code: wire.CodeModelNotFound, Param: "model",
		Message: fmt.Sprintf("The model %.128q does not exist: no live hive has it in its catalog and no worker serves it (see GET /v1/models; add one with rbee model download)", model)}
}

// apiError is the OpenAI adapter of wire.Error: it turns what the backend
// returned into the error an OpenAI client gets, with its status. Errors
// that carry no code are internal: logged in full, answered with a generic
// message.
func apiError(log *slog.Logger, r *http.Request, err error) (int, errorBody, int) {
	e, ok := wire.AsError(err)
	switch {
	case ok:
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Usually the client went away and reads nothing; if it is still
		// there, it learns that the request was stopped.
		e = wire.Errorf(wire.CodeCancelled, "the request was cancelled: %v", err)
	default:
		e = wire.Errorf(wire.CodeInternal, "%v", err)
	}
	if e.HTTPStatus() == http.StatusInternalServerError {
		// What went wrong inside is for the queen's log, not for clients.
		log.Error("openai: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = wire.Errorf(wire.CodeInternal, "internal error (see the queen's log)")
	}
	status, code, param, retry := e.HTTPStatus(), e.Code, e.Param, e.RetryAfter
	d := errorDetail{Message: e.Message, Code: code}
	switch {
	case status == http.StatusTooManyRequests:
		d.Type, retry = typeRateLimit, max(retry, 1)
	case status >= 500:
		d.Type = typeServer
		if status == http.StatusServiceUnavailable {
			retry = max(retry, 1)
		}
	default:
		d.Type = typeInvalidRequest
	}
	if code == wire.CodeUnknownModel || code == wire.CodeNotFound && status == http.StatusNotFound {
		d.Code, param = wire.CodeModelNotFound, "model"
	}
	if d.Code == "" {
		d.Code = http.StatusText(status)
	}
	if param != "" {
		d.Param = &param
	}
	return status, errorBody{Error: d}, retry
}

// writeError writes err as an OpenAI error answer.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body, retry := apiError(s.log, r, err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	writeJSON(w, status, body)
}

// writeJSON writes v as a JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
