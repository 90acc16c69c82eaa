package llama

/*
#include "bridge.h"
*/
import "C"

import "github.com/rbee/rbee/internal/engine"

// sampler is one sequence's sampling state.
type sampler struct {
	chain *C.struct_llama_sampler
}

// newSampler builds the sampler of a sequence of m.
func newSampler(m *Model, s engine.Sampling) (*sampler, error) {
	return &sampler{chain: newChain(s)}, nil
}

func (p *sampler) free() { C.llama_sampler_free(p.chain) }

func newChain(s engine.Sampling) *C.struct_llama_sampler {
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

// sample picks the sequence's next token from the logits at batch index
// idx of the last llama_decode. It runs on the scheduler goroutine.
func (s *sequence) sample(idx int) engine.Token {
	return engine.Token(C.llama_sampler_sample(s.smpl.chain, s.m.ctx, C.int32_t(idx)))
}
