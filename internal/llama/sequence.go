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

// NewSequence implements engine.Model. The sequence gets its slot when its
// prompt arrives (the first Prefill), so that the slot can be the one
// whose cached tokens the prompt continues.
func (m *Model) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return nil, m.failed
	}
	if m.open >= len(m.slots) {
		return nil, ErrNoSlot
	}
	smpl, err := newSampler(m, s)
	if err != nil {
		return nil, err
	}
	m.open++
	m.sched.opened(m)
	return &sequence{m: m, id: -1, smpl: smpl}, nil
}

type sequence struct {
	m    *Model
	id   C.llama_seq_id // -1 until the first Prefill places it in a slot
	smpl *sampler
	// Written by the scheduler:
	n      int          // tokens in the KV cache
	next   engine.Token // sampled after the last step
	cached int          // prompt tokens the cache served
	broken bool         // a step failed: its slot's cells are not kept
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
	return s.m.sched.submit(s.m, &step{seq: s, toks: prompt, ctx: ctx, place: s.id < 0})
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
	if s.id >= 0 {
		sl := &m.slots[s.id]
		sl.seq = nil
		sl.used = m.tick()
		if !m.cache.on || s.broken || m.failed != nil {
			m.clearSlot(int(s.id))
		}
	}
	m.open--
	m.mu.Unlock()
	m.sched.closed()
}

func (s *sequence) Cached() int { return s.cached }
