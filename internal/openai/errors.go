package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// OpenAI error types.
const (
	typeInvalidRequest = "invalid_request_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// Codes of errors that the OpenAI API itself defines; the others are rbee's
// own codes (wire.Code*), passed through.
const (
	codeInvalidValue  = "invalid_value"
	codeInvalidJSON   = "invalid_json"
	codeInvalidKey    = "invalid_api_key"
	codeModelNotFound = "model_not_found"
	codeUnknownURL    = "unknown_url"
	codeMethod        = "method_not_allowed"
)

// apiError is an error in the OpenAI shape, with its HTTP status.
type apiError struct {
	Status     int
	Type       string
	Code       string
	Param      string // the request field at fault; empty: null
	Message    string
	RetryAfter int // seconds; sent as Retry-After when > 0
}

func (e *apiError) Error() string { return e.Message }

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

func (e *apiError) body() errorBody {
	d := errorDetail{Message: e.Message, Type: e.Type, Code: e.Code}
	if e.Param != "" {
		d.Param = &e.Param
	}
	return errorBody{Error: d}
}

// badParam is a 400 for one request field.
func badParam(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Code: codeInvalidValue, Param: param, Message: fmt.Sprintf(format, args...)}
}

func unauthorized(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Type: typeInvalidRequest, Code: codeInvalidKey, Message: fmt.Sprintf(format, args...)}
}

func modelNotFound(model string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: typeInvalidRequest, Code: codeModelNotFound, Param: "model",
		Message: fmt.Sprintf("The model %.128q does not exist: no live hive has it in its catalog and no worker serves it (see GET /v1/models; add one with rbee model download)", model)}
}

// statusOfCode is the HTTP status of an rbee error code that arrives
// without one (an error event of a job or of a worker's stream).
var statusOfCode = map[string]int{
	wire.CodeBadRequest:      http.StatusBadRequest,
	wire.CodeContextLength:   http.StatusBadRequest,
	wire.CodeTooLarge:        http.StatusRequestEntityTooLarge,
	wire.CodeUnknownModel:    http.StatusNotFound,
	wire.CodeNotFound:        http.StatusNotFound,
	wire.CodeQueueFull:       http.StatusTooManyRequests,
	wire.CodeUnauthorized:    http.StatusUnauthorized,
	wire.CodeForbidden:       http.StatusForbidden,
	wire.CodeNoWorker:        http.StatusServiceUnavailable,
	wire.CodeNotReady:        http.StatusServiceUnavailable,
	wire.CodeUnavailable:     http.StatusServiceUnavailable,
	wire.CodeWorkerGone:      http.StatusServiceUnavailable,
	wire.CodeCancelled:       http.StatusServiceUnavailable,
	wire.CodeSpawnTimeout:    http.StatusServiceUnavailable,
	wire.CodeLoadFailed:      http.StatusServiceUnavailable,
	wire.CodeWorkerFailed:    http.StatusServiceUnavailable,
	wire.CodeBadModel:        http.StatusServiceUnavailable,
	wire.CodeModelInUse:      http.StatusServiceUnavailable,
	wire.CodeNotImplemented:  http.StatusServiceUnavailable,
	wire.CodeHiveUnreachable: http.StatusServiceUnavailable,
}

// toAPIError turns what the backend returned into an OpenAI error. Errors
// that carry no status or code are internal: logged in full, answered
// with a generic message.
func toAPIError(log *slog.Logger, r *http.Request, err error) *apiError {
	var (
		ae  *apiError
		he  *httpapi.Error
		re  *jobs.RemoteError
		je  jobs.Error
		jep *jobs.Error
	)
	status, code, msg, retry := 0, "", "", 0
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &he):
		status, code, msg, retry = he.Status, he.Code, he.Message, he.RetryAfter
	case errors.As(err, &re):
		status, code, msg = re.Status, re.Code, re.Message
	case errors.As(err, &jep) && jep != nil:
		code, msg = jep.Code, jep.Message
	case errors.As(err, &je):
		code, msg = je.Code, je.Message
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		// Usually the client went away and reads nothing; if it is still
		// there, it learns that the request was stopped.
		return &apiError{Status: http.StatusServiceUnavailable, Type: typeServer, Code: wire.CodeCancelled, Message: "the request was cancelled: " + err.Error()}
	}
	if status < 400 || status > 599 {
		status = statusOfCode[code]
	}
	if status == 0 {
		log.Error("openai: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		return &apiError{Status: http.StatusInternalServerError, Type: typeServer, Code: wire.CodeInternal, Message: "internal error (see the queen's log)"}
	}
	e := &apiError{Status: status, Code: code, Message: msg, RetryAfter: retry}
	switch {
	case status == http.StatusTooManyRequests:
		e.Type = typeRateLimit
		e.RetryAfter = max(e.RetryAfter, 1)
	case status >= 500:
		e.Type = typeServer
		if status == http.StatusServiceUnavailable {
			e.RetryAfter = max(e.RetryAfter, 1)
		}
	default:
		e.Type = typeInvalidRequest
	}
	if status == http.StatusNotFound && (code == wire.CodeUnknownModel || code == wire.CodeNotFound) {
		e.Code, e.Param = codeModelNotFound, "model"
	}
	if code == "" {
		e.Code = http.StatusText(status)
	}
	return e
}

// writeError writes e as an OpenAI error answer.
func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, e.body())
}

// writeJSON writes v as a JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
