// Package wire holds the JSON shapes that cross process boundaries: stream
// events, worker requests, heartbeats, job operations and error bodies. The
// CLI, the daemons, the typed client and the tests all use these types, so a
// field renamed here is renamed everywhere.
package wire

import "encoding/json"

// Event types of every SSE stream (contracts.md, "The stream format").
const (
	TypeNarration = "narration"
	TypeToken     = "token"
	TypeResult    = "result"
	TypeProgress  = "progress"
	TypeEnd       = "end"
	TypeError     = "error"
)

// Stop reasons carried by an end event.
const (
	StopMaxTokens    = "max_tokens"
	StopEOS          = "eos"
	StopSequence     = "stop_sequence"
	StopCancelled    = "cancelled"
	StopContextLimit = "context_limit"
	// StopToolCalls: the model called tools, and the answer is the calls.
	StopToolCalls = "tool_calls"
)

// StreamEvent is an event value that knows its own type, so that emitting
// one cannot name a type its JSON does not carry. The constructors below
// set the "type" field that EventType returns.
type StreamEvent interface {
	EventType() string
}

// EventType implements StreamEvent.
func (e Narration) EventType() string { return TypeNarration }

// EventType implements StreamEvent.
func (e Token) EventType() string { return TypeToken }

// EventType implements StreamEvent.
func (e Result) EventType() string { return TypeResult }

// EventType implements StreamEvent.
func (e Progress) EventType() string { return TypeProgress }

// EventType implements StreamEvent.
func (e End) EventType() string { return TypeEnd }

// EventType implements StreamEvent.
func (e ErrorEvent) EventType() string { return TypeError }

// EventType implements StreamEvent for an event decoded from another
// stream and relayed as it came.
func (e Event) EventType() string { return e.Type }

// Narration tells a person what is happening.
type Narration struct {
	Type     string `json:"type"`
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Human    string `json:"human"`
	JobID    string `json:"job_id,omitempty"`
	HiveID   string `json:"hive_id,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`
}

// NewNarration builds a narration event.
func NewNarration(actor, action, human string) Narration {
	return Narration{Type: TypeNarration, Actor: actor, Action: action, Human: human}
}

// Token is one piece of generated text; I counts pieces from 0. Generated
// text is the answer (T), reasoning (R: what a reasoning model wrote inside
// its <think> block) or a piece of a tool call (Call); Logprobs, when the
// request asked for them, are those of the tokens this piece completed.
type Token struct {
	Type     string         `json:"type"`
	T        string         `json:"t"`
	I        int            `json:"i"`
	R        string         `json:"r,omitempty"`
	Call     *ToolCallDelta `json:"call,omitempty"`
	Logprobs []TokenLogprob `json:"logprobs,omitempty"`
}

// NewToken builds a token event.
func NewToken(text string, index int) Token { return Token{Type: TypeToken, T: text, I: index} }

// Result is a job's structured answer.
type Result struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// NewResult builds a result event.
func NewResult(data any) Result { return Result{Type: TypeResult, Data: data} }

// Progress reports loading or download progress.
type Progress struct {
	Type  string  `json:"type"`
	Done  int64   `json:"done"`
	Total int64   `json:"total"`
	Unit  string  `json:"unit"`
	Rate  float64 `json:"rate,omitempty"` // units per second, when known
}

// NewProgress builds a progress event.
func NewProgress(done, total int64, unit string) Progress {
	return Progress{Type: TypeProgress, Done: done, Total: total, Unit: unit}
}

// Timings of one generation, in milliseconds and tokens per second.
type Timings struct {
	TTFTMs    float64 `json:"ttft_ms"`    // request accepted to first token out
	PromptMs  float64 `json:"prompt_ms"`  // prompt evaluation
	DecodeMs  float64 `json:"decode_ms"`  // first token to last token
	TotalMs   float64 `json:"total_ms"`   // request accepted to end
	QueueMs   float64 `json:"queue_ms"`   // waiting for a free slot
	PromptTPS float64 `json:"prompt_tps"` // prompt tokens per second
	DecodeTPS float64 `json:"decode_tps"` // generated tokens per second after the first
}

// End closes a successful generation.
type End struct {
	Type       string `json:"type"`
	StopReason string `json:"stop_reason"`
	TokensIn   int    `json:"tokens_in"`
	TokensOut  int    `json:"tokens_out"`
	// TokensCached is how many of TokensIn the worker's prompt cache
	// served without evaluating them.
	TokensCached int     `json:"tokens_cached,omitempty"`
	Timings      Timings `json:"timings"`
}

// NewEnd builds an end event.
func NewEnd(stopReason string, tokensIn, tokensOut int, t Timings) End {
	return End{Type: TypeEnd, StopReason: stopReason, TokensIn: tokensIn, TokensOut: tokensOut, Timings: t}
}

// ErrorEvent closes a failed stream.
type ErrorEvent struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewError builds an error event.
func NewError(code, message string) ErrorEvent {
	return ErrorEvent{Type: TypeError, Code: code, Message: message}
}

// ErrorEventOf is the error event that reports err: its code and message
// when it carries an *Error, else internal with err's text.
func ErrorEventOf(err error) ErrorEvent {
	if e, ok := AsError(err); ok && e.Code != "" {
		return NewError(e.Code, e.Message)
	}
	return NewError(CodeInternal, err.Error())
}

// Err is the *Error an error event stands for.
func (e Event) Err() *Error { return &Error{Code: e.Code, Message: e.Message} }

// Event is any decoded stream event: the fields of its Type are set.
type Event struct {
	Type string `json:"type"`

	Actor    string `json:"actor,omitempty"`
	Action   string `json:"action,omitempty"`
	Human    string `json:"human,omitempty"`
	JobID    string `json:"job_id,omitempty"`
	HiveID   string `json:"hive_id,omitempty"`
	WorkerID string `json:"worker_id,omitempty"`

	T        string         `json:"t,omitempty"`
	I        int            `json:"i,omitempty"`
	R        string         `json:"r,omitempty"`
	Call     *ToolCallDelta `json:"call,omitempty"`
	Logprobs []TokenLogprob `json:"logprobs,omitempty"`

	Data json.RawMessage `json:"data,omitempty"`

	Done  int64   `json:"done,omitempty"`
	Total int64   `json:"total,omitempty"`
	Unit  string  `json:"unit,omitempty"`
	Rate  float64 `json:"rate,omitempty"`

	StopReason   string   `json:"stop_reason,omitempty"`
	TokensIn     int      `json:"tokens_in,omitempty"`
	TokensOut    int      `json:"tokens_out,omitempty"`
	TokensCached int      `json:"tokens_cached,omitempty"`
	Timings      *Timings `json:"timings,omitempty"`

	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Terminal reports whether the event ends a job's stream.
func (e Event) Terminal() bool {
	return e.Type == TypeEnd || e.Type == TypeResult || e.Type == TypeError
}
