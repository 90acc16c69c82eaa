package wire

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes: every machine-readable code that rbee puts in an HTTP error
// body or an error event, whatever the protocol. StatusOf is the one table from
// code to HTTP status.
const (
	// Requests that are wrong whatever the state of the system.
	CodeBadRequest     = "bad_request"
	CodeTooLarge       = "body_too_large"
	CodeNotFound       = "not_found"
	CodeUnknownModel   = "unknown_model"
	CodeContextLength  = "context_length_exceeded"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeForbiddenHost  = "forbidden_host"  // a Host header that is not this daemon's (DNS rebinding)
	CodeRequestTimeout = "request_timeout" // the request body did not arrive in time

	// The service is busy or a part of it is missing; worth a retry.
	CodeQueueFull       = "queue_full"
	CodeNotReady        = "not_ready"
	CodeCancelled       = "cancelled"
	CodeUnavailable     = "unavailable"
	CodeWorkerGone      = "worker_gone"
	CodeDeadline        = "deadline_exceeded"
	CodeNoWorker        = "no_worker"        // no worker serves the model: spawn one
	CodeHiveUnreachable = "hive_unreachable" // the hive does not answer: start it
	CodeSlowReader      = "slow_reader"      // a stream reader fell so far behind that events were dropped

	CodeInternal       = "internal"
	CodeNotImplemented = "not_implemented" // the operation exists but is not built yet

	// The hive's worker and model operations.
	CodeModelInUse   = "model_in_use"   // model_delete while workers use the model, without force
	CodeModelExists  = "model_exists"   // the id already names another file in the catalog
	CodeWorkerExists = "worker_exists"  // a heartbeat claims the id of another live worker
	CodeWorkerFailed = "worker_failed"  // a worker exited or failed while it started
	CodeLoadFailed   = "load_failed"    // a worker could not load its model
	CodeSpawnTimeout = "spawn_timeout"  // a worker did not start or load in time
	CodeBadModel     = "bad_model_file" // a file is not a usable GGUF model

	// Model downloads (model_download, and worker_spawn of an hf: reference).
	CodeDownloadFailed = "download_failed"   // the transfer failed after its retries
	CodeDiskFull       = "disk_full"         // no space left for the model file
	CodeChecksum       = "checksum_mismatch" // the bytes do not match the hub's SHA-256
	CodeHubAuth        = "hub_auth"          // the hub wants a (better) HF_TOKEN
	CodeHubRefused     = "hub_refused"       // the hub sent an unsafe file name, digest or redirect
	CodeNoChoice       = "model_choice"      // no file named, and no single GGUF file to pick

	// Hives on other machines, reached over SSH.
	CodeSSHFailed        = "ssh_failed"        // connecting, logging in or a command over SSH failed
	CodeHostKeyUnknown   = "host_key_unknown"  // the host's key is not in known_hosts: trust it first
	CodeHostKeyChanged   = "host_key_changed"  // the host's key differs from the recorded one
	CodeIncompatibleHost = "incompatible_host" // the host's OS or CPU differs from the programs to install
	CodeNotInstalled     = "not_installed"     // the hive is not installed on the host

	// Codes that the OpenAI API defines, used in its error bodies.
	CodeInvalidValue  = "invalid_value"
	CodeInvalidJSON   = "invalid_json"
	CodeInvalidAPIKey = "invalid_api_key"
	CodeModelNotFound = "model_not_found"
	CodeUnknownURL    = "unknown_url"
	CodeMethod        = "method_not_allowed"
)

// statusOf is the HTTP status of each code. A code missing here is a 500.
var statusOf = map[string]int{
	CodeBadRequest:     http.StatusBadRequest,
	CodeTooLarge:       http.StatusRequestEntityTooLarge,
	CodeNotFound:       http.StatusNotFound,
	CodeUnknownModel:   http.StatusNotFound,
	CodeContextLength:  http.StatusBadRequest,
	CodeUnauthorized:   http.StatusUnauthorized,
	CodeForbidden:      http.StatusForbidden,
	CodeForbiddenHost:  http.StatusForbidden,
	CodeRequestTimeout: http.StatusRequestTimeout,

	CodeQueueFull:       http.StatusTooManyRequests,
	CodeNotReady:        http.StatusServiceUnavailable,
	CodeCancelled:       http.StatusServiceUnavailable,
	CodeUnavailable:     http.StatusServiceUnavailable,
	CodeWorkerGone:      http.StatusServiceUnavailable,
	CodeDeadline:        http.StatusServiceUnavailable,
	CodeNoWorker:        http.StatusServiceUnavailable,
	CodeHiveUnreachable: http.StatusServiceUnavailable,
	CodeSlowReader:      http.StatusServiceUnavailable,

	CodeInternal:       http.StatusInternalServerError,
	CodeNotImplemented: http.StatusNotImplemented,

	CodeModelInUse:   http.StatusConflict,
	CodeModelExists:  http.StatusConflict,
	CodeWorkerExists: http.StatusConflict,
	CodeWorkerFailed: http.StatusServiceUnavailable,
	CodeLoadFailed:   http.StatusServiceUnavailable,
	CodeSpawnTimeout: http.StatusServiceUnavailable,
	CodeBadModel:     http.StatusServiceUnavailable,

	CodeDownloadFailed: http.StatusBadGateway,
	CodeDiskFull:       http.StatusInsufficientStorage,
	CodeChecksum:       http.StatusBadGateway,
	CodeHubAuth:        http.StatusBadGateway,
	CodeHubRefused:     http.StatusBadGateway,
	CodeNoChoice:       http.StatusBadRequest,

	CodeSSHFailed:        http.StatusBadGateway,
	CodeHostKeyUnknown:   http.StatusConflict,
	CodeHostKeyChanged:   http.StatusConflict,
	CodeIncompatibleHost: http.StatusConflict,
	CodeNotInstalled:     http.StatusConflict,

	CodeInvalidValue:  http.StatusBadRequest,
	CodeInvalidJSON:   http.StatusBadRequest,
	CodeInvalidAPIKey: http.StatusUnauthorized,
	CodeModelNotFound: http.StatusNotFound,
	CodeUnknownURL:    http.StatusNotFound,
	CodeMethod:        http.StatusMethodNotAllowed,
}

// StatusOf is the HTTP status of an error code: the one table every protocol
// answers by.
func StatusOf(code string) int {
	if s, ok := statusOf[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Error is rbee's one error type: what a handler or a job returns to end
// with a specific code, and what a client decodes from an error body or an
// error event. Each protocol writes it in its own shape (httpapi for the job
// protocol and the worker API, internal/openai for OpenAI's).
type Error struct {
	Code    string
	Message string
	// Status is the HTTP status; 0 means StatusOf(Code). A client sets it to
	// the status it was answered with; an error event has none.
	Status int
	// RetryAfter, in seconds, is sent as Retry-After when > 0.
	RetryAfter int
	// Param names the request field at fault, when one is (OpenAI's param).
	Param string
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus is the status to answer e with: its own when it is a valid
// error status, else the code's.
func (e *Error) HTTPStatus() int {
	if e.Status >= 400 && e.Status <= 599 {
		return e.Status
	}
	return StatusOf(e.Code)
}

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is an *Error of code bad_request.
func BadRequest(format string, args ...any) *Error {
	return Errorf(CodeBadRequest, format, args...)
}

// NotFound is an *Error of code not_found.
func NotFound(format string, args ...any) *Error {
	return Errorf(CodeNotFound, format, args...)
}

// AsError finds the *Error in err's chain. When err wraps it, the copy it
// returns carries err's whole text, since the outer words say where it
// happened.
func AsError(err error) (*Error, bool) {
	var e *Error
	if !errors.As(err, &e) || e == nil {
		return nil, false
	}
	if msg := err.Error(); msg != e.Message && err != error(e) {
		c := *e
		c.Message = msg
		return &c, true
	}
	return e, true
}

// IsCode reports whether err carries an *Error of the given code.
func IsCode(err error, code string) bool {
	e, ok := AsError(err)
	return ok && e.Code == code
}

// ErrorBody is the job protocol's body of every non-2xx answer:
// {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
