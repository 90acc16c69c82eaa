package llama

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/engine"
)

func TestDecodeStatus(t *testing.T) {
	if err := decodeStatus(0); err != nil {
		t.Fatalf("status 0: %v", err)
	}
	cases := []struct {
		status             int
		kvFull, fatal, bad bool
	}{
		{status: 1, kvFull: true},
		{status: 2, fatal: true},
		{status: 3},
		{status: -1, bad: true},
		{status: -2, fatal: true},
		{status: -3, fatal: true},
	}
	for _, c := range cases {
		err := decodeStatus(c.status)
		if err == nil {
			t.Fatalf("status %d: no error", c.status)
		}
		if got := errors.Is(err, ErrKVCacheFull); got != c.kvFull {
			t.Errorf("status %d: Is(ErrKVCacheFull) = %v", c.status, got)
		}
		if got := errors.Is(err, engine.ErrContextFull); got != c.kvFull {
			t.Errorf("status %d: Is(engine.ErrContextFull) = %v", c.status, got)
		}
		if got := errors.Is(err, engine.ErrModelFailed); got != c.fatal || err.Fatal() != c.fatal {
			t.Errorf("status %d: Is(engine.ErrModelFailed) = %v, Fatal() = %v", c.status, got, err.Fatal())
		}
		if msg := err.Error(); !strings.Contains(msg, "llama_decode returned") || c.bad != strings.Contains(msg, "invalid input batch") {
			t.Errorf("status %d: message %q", c.status, msg)
		}
		var de *DecodeError
		if !errors.As(error(err), &de) || de.Status != c.status {
			t.Errorf("status %d: As gives %v", c.status, de)
		}
	}
}

func TestPieceOutOfRange(t *testing.T) {
	m, err := Load(filepath.Join(sharedModels, "stories260K.gguf"), Options{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	n := engine.Token(m.Info().VocabSize)
	for _, tok := range []engine.Token{-1, n, n + 1000} {
		if p, err := m.Piece(tok); err == nil {
			t.Errorf("Piece(%d) = %q, want an error", tok, p)
		}
	}
	if p, err := m.Piece(403); err != nil || len(p) == 0 {
		t.Errorf("Piece(403) = %q, %v", p, err)
	}
	if p, err := m.Piece(n - 1); err != nil {
		t.Errorf("Piece(last token) = %q, %v", p, err)
	}
}

// loadSlots closes the model after the sequences that prefilled opened.
func loadSlots(t *testing.T, ctx, slots int) *Model {
	t.Helper()
	m, err := Load(filepath.Join(sharedModels, "stories260K.gguf"), Options{Threads: 1, CtxSize: ctx, Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// step1 submits one token for s straight to evaluate, past the context
// check of Decode, as the scheduler would.
func step1(s engine.Sequence, tok engine.Token) *step {
	return &step{seq: s.(*sequence), toks: []engine.Token{tok}, reply: make(chan error, 1)}
}

// prefilled opens a sequence of n copies of tok; sequences of different
// tokens share no cached prefix.
func prefilled(t *testing.T, m *Model, n int, tok engine.Token) engine.Sequence {
	t.Helper()
	s, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	toks := make([]engine.Token, n)
	for i := range toks {
		toks[i] = tok
	}
	if err := s.Prefill(context.Background(), toks); err != nil {
		t.Fatal(err)
	}
	return s
}

// A full KV cache fails only the step that does not fit, as a context
// error, and the model goes on working.
func TestKVCacheFull(t *testing.T) {
	m := loadSlots(t, 64, 2)
	want := generate(t, m, "Once upon a time", 16, engine.Sampling{})
	c := m.Info().CtxSize
	// The two slots share one cache of 2c cells: one free cell is left for
	// two tokens in one batch, so the batch fails and each is retried alone.
	a, b := prefilled(t, m, c, 300), prefilled(t, m, c-1, 301)
	sa, sb := step1(a, 300), step1(b, 300)
	if left := m.evaluate([]*step{sa, sb}); len(left) != 0 {
		t.Fatalf("%d steps left", len(left))
	}
	errA, errB := <-sa.reply, <-sb.reply
	if (errA == nil) == (errB == nil) {
		t.Fatalf("replies %v and %v: want exactly one to fit", errA, errB)
	}
	err := errors.Join(errA, errB)
	var de *DecodeError
	if !errors.As(err, &de) || de.Status != 1 || !errors.Is(err, engine.ErrContextFull) || errors.Is(err, engine.ErrModelFailed) {
		t.Fatalf("error %v: want a KV-full DecodeError", err)
	}
	if a.Len()+b.Len() != 2*c {
		t.Errorf("lengths %d and %d after one token fitted, want %d in all", a.Len(), b.Len(), 2*c)
	}
	a.Close()
	b.Close()
	if got := generate(t, m, "Once upon a time", 16, engine.Sampling{}); got != want {
		t.Errorf("after a full cache: %q, want %q", got, want)
	}
}

// A batch that llama.cpp rejects fails the sequence that made it invalid,
// not the one sharing its llama_decode.
func TestInvalidBatchFailsOnlyItsSequence(t *testing.T) {
	m := loadSlots(t, 64, 2)
	a, b := prefilled(t, m, 4, 300), prefilled(t, m, 4, 301)
	good, bad := step1(a, 300), step1(b, engine.Token(m.Info().VocabSize))
	m.evaluate([]*step{bad, good})
	if err := <-good.reply; err != nil {
		t.Errorf("valid step: %v", err)
	}
	err := <-bad.reply
	var de *DecodeError
	if !errors.As(err, &de) || de.Status != -1 || de.Fatal() {
		t.Errorf("invalid step: %v, want status -1", err)
	}
	if a.Len() != 5 || b.Len() != 4 {
		t.Errorf("lengths %d and %d, want 5 and 4", a.Len(), b.Len())
	}
}

// After a fatal decode every open sequence and every new one fails with
// the same error, since the KV cache may hold half of a batch.
func TestFatalDecodeFailsEverything(t *testing.T) {
	m := loadSlots(t, 64, 2)
	a := prefilled(t, m, 4, 300)
	// llama.cpp offers no way to make llama_decode fail fatally on
	// purpose: record the failure as decodeEntries would.
	m.mu.Lock()
	m.failed = decodeStatus(-3)
	m.mu.Unlock()
	if err := a.Decode(300); !errors.Is(err, engine.ErrModelFailed) {
		t.Errorf("Decode after a fatal error: %v", err)
	}
	if _, err := m.NewSequence(engine.Sampling{}); !errors.Is(err, engine.ErrModelFailed) {
		t.Errorf("NewSequence after a fatal error: %v", err)
	}
}
