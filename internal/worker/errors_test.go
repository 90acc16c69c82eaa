package worker

import (
	"context"
	"fmt"
	"testing"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// failingModel is the fake model whose sequences fail as told: Prefill
// with prefillErr, the first Decode with decodeErr.
type failingModel struct {
	*fake.Model
	prefillErr, decodeErr error
}

func (m failingModel) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	seq, err := m.Model.NewSequence(s)
	return failingSeq{seq, m}, err
}

type failingSeq struct {
	engine.Sequence
	m failingModel
}

func (s failingSeq) Prefill(ctx context.Context, p []engine.Token) error {
	if s.m.prefillErr != nil {
		return s.m.prefillErr
	}
	return s.Sequence.Prefill(ctx, p)
}

func (s failingSeq) Decode(t engine.Token) error {
	if s.m.decodeErr != nil {
		return s.m.decodeErr
	}
	return s.Sequence.Decode(t)
}

// What the engine says went wrong is the code of the stream's error event;
// a model that failed also puts the worker in the error state, which its
// heartbeats and /v1/ready report, and it takes no more requests.
func TestGenerationErrors(t *testing.T) {
	for _, c := range []struct {
		name       string
		m          failingModel
		code       string
		brokenness bool
	}{
		{"context full", failingModel{prefillErr: fmt.Errorf("llama: no room: %w", engine.ErrContextFull)}, wire.CodeContextLength, false},
		{"model failed", failingModel{decodeErr: fmt.Errorf("llama_decode: %w", engine.ErrModelFailed)}, wire.CodeWorkerFailed, true},
		{"other", failingModel{decodeErr: fmt.Errorf("something else")}, wire.CodeInternal, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.m.Model = &fake.Model{}
			q := &fakeQueen{}
			qs := testQueen(t, q)
			w := start(t, c.m, func(cfg *Config) { cfg.QueenURL = qs })
			_, events := w.stream(t, w.submit(t, `{"prompt":"a","max_tokens":5}`))
			if e := last(events); e.Type != wire.TypeError || e.Code != c.code {
				t.Fatalf("stream ended with %+v, want an error %s", e, c.code)
			}
			if !c.brokenness {
				if r := w.Ready(); !r.Ready {
					t.Fatalf("ready after a request's failure: %+v", r)
				}
				return
			}
			if r := w.Ready(); r.Ready || r.State != wire.StateError || r.Error == "" {
				t.Fatalf("ready after the model failed: %+v", r)
			}
			testkit.WaitFor(t, "a heartbeat that says error", func() bool {
				_, beats := q.snapshot()
				return len(beats) > 0 && beats[len(beats)-1].State == wire.StateError
			})
			if resp, b := w.post(t, `{"prompt":"a"}`); resp.StatusCode != 503 {
				t.Fatalf("request to a failed worker: %s %s", resp.Status, b)
			}
		})
	}
}
