package wire

// Error codes shared by HTTP error bodies and error events.
const (
	CodeBadRequest    = "bad_request"
	CodeTooLarge      = "body_too_large"
	CodeNotFound      = "not_found"
	CodeQueueFull     = "queue_full"
	CodeNotReady      = "not_ready"
	CodeCancelled     = "cancelled"
	CodeInternal      = "internal"
	CodeUnauthorized  = "unauthorized"
	CodeForbidden     = "forbidden"
	CodeUnavailable   = "unavailable"
	CodeWorkerGone    = "worker_gone"
	CodeUnknownModel  = "unknown_model"
	CodeContextLength = "context_length_exceeded"
	CodeDeadline      = "deadline_exceeded"
)

// ErrorBody is the body of every non-2xx answer: {"error":{"code","message"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
