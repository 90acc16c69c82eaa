package llama

import (
	"fmt"

	"github.com/rbee/rbee/internal/engine"
)

// ErrKVCacheFull is wrapped by the DecodeError of a llama_decode that found
// no room in the KV cache for its batch. llama.cpp restores the cache first,
// so the model stays usable; it wraps engine.ErrContextFull because, for the
// caller, the request did not fit the context.
var ErrKVCacheFull = fmt.Errorf("no room in the KV cache for the batch: %w", engine.ErrContextFull)

// DecodeError is a llama_decode that did not return 0. Status is what it
// returned, as llama.h documents it.
type DecodeError struct {
	Status int
}

// decodeStatus classifies what llama_decode returned: nil for success.
func decodeStatus(status int) *DecodeError {
	if status == 0 {
		return nil
	}
	return &DecodeError{Status: status}
}

// Fatal reports whether the context can no longer be trusted. Below -1,
// llama.h says the ubatches already evaluated stay in the KV cache, so the
// positions of every sequence in the batch are unknown. An abort (2) leaves
// the cache the same way, and since rbee sets no abort callback it cannot be
// a cancellation we asked for.
func (e *DecodeError) Fatal() bool { return e.Status == 2 || e.Status < -1 }

// Unwrap lets callers test errors.Is(err, ErrKVCacheFull) (and so
// engine.ErrContextFull) or errors.Is(err, engine.ErrModelFailed). An
// invalid batch (-1) and unknown positive statuses wrap nothing: llama.cpp
// restored the cache, and the fault is in that batch, not the model.
func (e *DecodeError) Unwrap() error {
	switch {
	case e.Status == 1:
		return ErrKVCacheFull
	case e.Fatal():
		return engine.ErrModelFailed
	}
	return nil
}

func (e *DecodeError) Error() string {
	var why string
	switch {
	case e.Status == 1:
		why = ErrKVCacheFull.Error()
	case e.Status == 2:
		why = "aborted: " + engine.ErrModelFailed.Error()
	case e.Status == -1:
		why = "invalid input batch"
	case e.Status < -1:
		why = "fatal error: " + engine.ErrModelFailed.Error()
	default:
		why = "unknown status"
	}
	return fmt.Sprintf("llama_decode returned %d: %s", e.Status, why)
}
