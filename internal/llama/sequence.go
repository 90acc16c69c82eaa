package llama

/*
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"

	"github.com/rbee/rbee/internal/engine"
)

// ErrNoSlot is returned by NewSequence when every slot holds a sequence.
var ErrNoSlot = errors.New("no free sequence slot")

// NewSequence implements engine.Model.
func (m *Model) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.free) == 0 {
		return nil, ErrNoSlot
	}
	id := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	C.llama_memory_seq_rm(C.llama_get_memory(m.ctx), id, -1, -1)
	return &sequence{m: m, id: id, smpl: newSampler(s)}, nil
}

func newSampler(s engine.Sampling) *C.struct_llama_sampler {
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	add := func(x *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, x) }
	if s.RepetitionPenalty > 0 && s.RepetitionPenalty != 1 {
		lastN := s.PenaltyLastN
		if lastN == 0 {
			lastN = 64
		}
		add(C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(s.RepetitionPenalty), 0, 0))
	}
	if s.Temperature <= 0 {
		add(C.llama_sampler_init_greedy())
		return chain
	}
	if s.TopK > 0 {
		add(C.llama_sampler_init_top_k(C.int32_t(s.TopK)))
	}
	if s.TopP > 0 && s.TopP < 1 {
		add(C.llama_sampler_init_top_p(C.float(s.TopP), 1))
	}
	if s.MinP > 0 {
		add(C.llama_sampler_init_min_p(C.float(s.MinP), 1))
	}
	add(C.llama_sampler_init_temp(C.float(s.Temperature)))
	add(C.llama_sampler_init_dist(C.uint32_t(s.Seed)))
	return chain
}

type sequence struct {
	m    *Model
	id   C.llama_seq_id
	smpl *C.struct_llama_sampler
	n    int
	next engine.Token // sampled after the last decode
}

func (s *sequence) Len() int { return s.n }

func (s *sequence) Prefill(ctx context.Context, prompt []engine.Token) error {
	if s.n+len(prompt) > s.m.info.CtxSize {
		return engine.ErrContextFull
	}
	for start := 0; start < len(prompt); start += s.m.nb {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(start+s.m.nb, len(prompt))
		if err := s.decode(prompt[start:end], end == len(prompt)); err != nil {
			return err
		}
	}
	return nil
}

func (s *sequence) decode(toks []engine.Token, wantLogits bool) error {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, t := range toks {
		logits := C.int8_t(0)
		if wantLogits && i == len(toks)-1 {
			logits = 1
		}
		C.rbee_batch_set(&m.batch, C.int(i), C.llama_token(t), C.llama_pos(s.n+i), s.id, logits)
	}
	m.batch.n_tokens = C.int32_t(len(toks))
	if rc := C.llama_decode(m.ctx, m.batch); rc != 0 {
		return fmt.Errorf("llama_decode failed with status %d", int(rc))
	}
	s.n += len(toks)
	if wantLogits {
		// Sample now, under the same lock: the next llama_decode of any
		// sequence replaces the context's logits.
		s.next = engine.Token(C.llama_sampler_sample(s.smpl, m.ctx, C.int32_t(len(toks)-1)))
	}
	return nil
}

func (s *sequence) Sample() engine.Token { return s.next }

func (s *sequence) Decode(t engine.Token) error {
	if s.n+1 > s.m.info.CtxSize {
		return engine.ErrContextFull
	}
	return s.decode([]engine.Token{t}, true)
}

func (s *sequence) Close() {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if s.smpl != nil {
		C.llama_sampler_free(s.smpl)
		s.smpl = nil
		C.llama_memory_seq_rm(C.llama_get_memory(m.ctx), s.id, -1, -1)
		m.free = append(m.free, s.id)
	}
}
