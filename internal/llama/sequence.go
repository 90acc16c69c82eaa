package llama

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"

	"github.com/rbee/rbee/internal/engine"
)

// ErrNoSlot is returned by NewSequence when every slot holds a sequence.
var ErrNoSlot = errors.New("no free sequence slot")

// NewSequence implements engine.Model.
func (m *Model) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return nil, m.failed
	}
	if len(m.free) == 0 {
		return nil, ErrNoSlot
	}
	id := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	C.llama_memory_seq_rm(C.llama_get_memory(m.ctx), id, -1, -1)
	smpl, err := newSampler(m, s)
	if err != nil {
		m.free = append(m.free, id)
		return nil, err
	}
	m.sched.opened(m)
	return &sequence{m: m, id: id, smpl: smpl}, nil
}

type sequence struct {
	m      *Model
	id     C.llama_seq_id
	smpl   *sampler
	n      int          // tokens in the KV cache; written by the scheduler
	next   engine.Token // sampled after the last step; written by the scheduler
	cached int          // prompt tokens the cache served
}

func (s *sequence) Len() int { return s.n }

// Prefill evaluates the prompt. Long prompts go in chunks that share each
// llama_decode with the other sequences' next tokens, so running streams
// keep going while a new one reads its prompt.
func (s *sequence) Prefill(ctx context.Context, prompt []engine.Token) error {
	if s.n+len(prompt) > s.m.info.CtxSize {
		return engine.ErrContextFull
	}
	if len(prompt) == 0 {
		return errors.New("empty prompt: nothing to evaluate")
	}
	return s.m.sched.submit(s.m, &step{seq: s, toks: prompt, ctx: ctx})
}

func (s *sequence) Sample() engine.Token { return s.next }

func (s *sequence) Decode(t engine.Token) error {
	if s.n+1 > s.m.info.CtxSize {
		return engine.ErrContextFull
	}
	return s.m.sched.submit(s.m, &step{seq: s, toks: []engine.Token{t}})
}

func (s *sequence) Close() {
	m := s.m
	m.mu.Lock()
	if s.smpl == nil {
		m.mu.Unlock()
		return
	}
	s.smpl.free()
	s.smpl = nil
	C.llama_memory_seq_rm(C.llama_get_memory(m.ctx), s.id, -1, -1)
	m.free = append(m.free, s.id)
	m.mu.Unlock()
	m.sched.closed()
}

func (s *sequence) Cached() int { return s.cached }
