package llama

/*
#include "bridge.h"
*/
import "C"

import (
	"slices"
	"unsafe"

	"github.com/rbee/rbee/internal/engine"
)

// The prompt cache keeps what a sequence evaluated after its request ends,
// so that the next request sharing a prefix with it (the next turn of a
// conversation, another request with the same system prompt) evaluates only
// what is new. It has two tiers:
//
//   - slots: each llama.cpp sequence id keeps its KV cells when its
//     sequence closes. A new sequence takes the idle slot whose tokens it
//     continues, or copies the longest shared prefix from any slot (with the
//     unified KV cache llama_memory_seq_cp shares the cells: no compute).
//   - RAM: a slot evicted for a new conversation is saved with
//     llama_state_seq_get_data, up to a byte budget, least recently used
//     out first, and restored into a slot when a request continues it.
//
// Everything here runs under Model.mu, on the scheduler goroutine or in
// NewSequence/Close, so the KV cache never changes under it.

// DefaultCacheRAM is the RAM budget for sequences saved beyond the slots.
const DefaultCacheRAM = 1 << 30

// Below minReuse shared tokens, a copy or a restore is not worth its
// bookkeeping: recomputing a handful of tokens costs about one decode step
// (bench/chat measures the crossover), and sequences shorter than this are
// not saved to RAM.
const minReuse = 16

// slot is one llama.cpp sequence id.
type slot struct {
	seq  *sequence      // the open sequence using it; nil when idle
	toks []engine.Token // the tokens in its KV cells, in position order
	used uint64         // the cache clock when it was last used
}

// savedSeq is a sequence saved to RAM.
type savedSeq struct {
	toks []engine.Token
	data []byte
	used uint64
}

// promptCache is the Model's cache state beyond the slots themselves.
type promptCache struct {
	on       bool
	budget   int64
	ram      []*savedSeq
	ramBytes int64
	clock    uint64

	promptTokens, cachedTokens int64
	restores, saves            int64
}

func (m *Model) mem() C.llama_memory_t { return C.llama_get_memory(m.ctx) }

func (m *Model) tick() uint64 {
	m.cache.clock++
	return m.cache.clock
}

// lcp is the length of the longest common prefix of a and b.
func lcp(a, b []engine.Token) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// clearSlot empties slot id's KV cells.
func (m *Model) clearSlot(id int) {
	C.llama_memory_seq_rm(m.mem(), C.llama_seq_id(id), -1, -1)
	m.slots[id].toks = nil
}

// cutSlot keeps the first n tokens of slot id. A model whose memory cannot
// drop a suffix (recurrent models) loses the whole slot.
func (m *Model) cutSlot(id, n int) int {
	sl := &m.slots[id]
	if n >= len(sl.toks) {
		return len(sl.toks)
	}
	if n == 0 || !bool(C.llama_memory_seq_rm(m.mem(), C.llama_seq_id(id), C.llama_pos(n), -1)) {
		m.clearSlot(id)
		return 0
	}
	sl.toks = sl.toks[:n]
	return n
}

// place chooses the slot of a new sequence whose prompt is prompt, fills it
// with the longest cached prefix of prompt, and returns how many prompt
// tokens that is (always less than len(prompt): the last one is evaluated
// for its logits).
func (m *Model) place(s *sequence, prompt []engine.Token) int {
	m.cache.promptTokens += int64(len(prompt))
	own := m.chooseSlot(prompt)
	s.id = C.llama_seq_id(own)
	m.slots[own].seq = s
	m.slots[own].used = m.tick()
	if !m.cache.on {
		m.clearSlot(own)
		return 0
	}
	have := m.cutSlot(own, lcp(m.slots[own].toks, prompt))

	// A longer prefix elsewhere: another slot (idle or running), or RAM.
	src, srcLen := -1, have
	for j := range m.slots {
		if j == own {
			continue
		}
		if n := lcp(m.slots[j].toks, prompt); n > srcLen {
			src, srcLen = j, n
		}
	}
	var saved *savedSeq
	for _, r := range m.cache.ram {
		if n := lcp(r.toks, prompt); n > srcLen {
			saved, srcLen, src = r, n, -1
		}
	}
	if srcLen >= have+minReuse {
		switch {
		case src >= 0:
			m.clearSlot(own)
			C.llama_memory_seq_cp(m.mem(), C.llama_seq_id(src), C.llama_seq_id(own), 0, C.llama_pos(srcLen))
			m.slots[own].toks = append([]engine.Token(nil), prompt[:srcLen]...)
			have = srcLen
		case saved != nil:
			have = m.restore(own, saved, srcLen)
		}
	}
	// The last prompt token is always evaluated: its logits are the first
	// sample.
	have = m.cutSlot(own, min(have, len(prompt)-1))
	if have > 0 && !m.intact(own, have) {
		m.clearSlot(own)
		have = 0
	}
	m.cache.cachedTokens += int64(have)
	return have
}

// intact checks that slot id holds exactly positions [0, n): a sliding-
// window model prunes old cells, and then its prefix cannot be reused.
func (m *Model) intact(id, n int) bool {
	sid := C.llama_seq_id(id)
	return C.llama_memory_seq_pos_min(m.mem(), sid) == 0 &&
		C.llama_memory_seq_pos_max(m.mem(), sid) == C.llama_pos(n-1)
}

// chooseSlot picks a slot that no open sequence uses: the idle slot that
// prompt continues best when it mostly continues it (the next turn of its
// conversation), else an empty slot, else the least recently used idle slot
// (saved to RAM first). Placement only runs with fewer open sequences than
// slots, so there is always one.
func (m *Model) chooseSlot(prompt []engine.Token) int {
	best, bestLen, empty, lru := -1, 0, -1, -1
	for j := range m.slots {
		sl := &m.slots[j]
		if sl.seq != nil {
			continue
		}
		if len(sl.toks) == 0 {
			if empty < 0 {
				empty = j
			}
			continue
		}
		// Reuse in place only when the cut keeps most of what the slot
		// holds: another conversation that shares just a system prompt
		// copies the prefix instead, and this one stays.
		if n := lcp(sl.toks, prompt); n > bestLen && 2*n >= len(sl.toks) {
			best, bestLen = j, n
		}
		if lru < 0 || sl.used < m.slots[lru].used {
			lru = j
		}
	}
	switch {
	case best >= 0:
		return best
	case empty >= 0:
		return empty
	}
	m.save(lru)
	return lru
}

// save copies idle slot id's sequence to RAM, if the cache is on, the
// sequence is worth it and fits the budget; RAM entries it contains are
// dropped.
func (m *Model) save(id int) {
	sl := &m.slots[id]
	if !m.cache.on || m.cache.budget <= 0 || len(sl.toks) < minReuse {
		return
	}
	sid := C.llama_seq_id(id)
	size := int64(C.llama_state_seq_get_size(m.ctx, sid))
	if size <= 0 || size > m.cache.budget {
		return
	}
	kept := m.cache.ram[:0]
	for _, r := range m.cache.ram {
		if lcp(r.toks, sl.toks) == len(r.toks) {
			m.cache.ramBytes -= int64(len(r.data))
			continue
		}
		kept = append(kept, r)
	}
	clear(m.cache.ram[len(kept):])
	m.cache.ram = kept
	for m.cache.ramBytes+size > m.cache.budget && len(m.cache.ram) > 0 {
		m.dropLRU()
	}
	data := make([]byte, size)
	got := C.llama_state_seq_get_data(m.ctx, (*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(size), sid)
	if got == 0 || int64(got) > size {
		return
	}
	m.cache.ram = append(m.cache.ram, &savedSeq{toks: slices.Clone(sl.toks), data: data[:got], used: sl.used})
	m.cache.ramBytes += int64(got)
	m.cache.saves++
}

func (m *Model) dropLRU() {
	lru := 0
	for i, r := range m.cache.ram {
		if r.used < m.cache.ram[lru].used {
			lru = i
		}
	}
	m.cache.ramBytes -= int64(len(m.cache.ram[lru].data))
	m.cache.ram = append(m.cache.ram[:lru], m.cache.ram[lru+1:]...)
}

// restore loads saved into slot id and keeps its first n tokens. Restored
// whole, the entry leaves RAM: the slot holds it now, and saves it again if
// it is evicted.
func (m *Model) restore(id int, saved *savedSeq, n int) int {
	m.clearSlot(id)
	got := C.llama_state_seq_set_data(m.ctx, (*C.uint8_t)(unsafe.Pointer(&saved.data[0])), C.size_t(len(saved.data)), C.llama_seq_id(id))
	if got == 0 {
		m.clearSlot(id)
		return 0
	}
	m.cache.restores++
	m.slots[id].toks = append([]engine.Token(nil), saved.toks...)
	saved.used = m.tick()
	if n == len(saved.toks) {
		for i, r := range m.cache.ram {
			if r == saved {
				m.cache.ramBytes -= int64(len(r.data))
				m.cache.ram = append(m.cache.ram[:i], m.cache.ram[i+1:]...)
				break
			}
		}
	}
	return m.cutSlot(id, n)
}

// evictIdle empties the idle slots, saving them to RAM, to make room in a
// full KV cache for running sequences. It reports whether it freed any.
func (m *Model) evictIdle() bool {
	freed := false
	for j := range m.slots {
		if m.slots[j].seq == nil && len(m.slots[j].toks) > 0 {
			m.save(j)
			m.clearSlot(j)
			freed = true
		}
	}
	return freed
}

// CacheStats implements engine.CacheReporter.
func (m *Model) CacheStats() engine.CacheStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := engine.CacheStats{
		Enabled:      m.cache.on,
		RAMBytes:     m.cache.ramBytes,
		BudgetBytes:  m.cache.budget,
		PromptTokens: m.cache.promptTokens,
		CachedTokens: m.cache.cachedTokens,
	}
	for _, sl := range m.slots {
		if sl.seq == nil && len(sl.toks) > 0 {
			st.Sequences++
			st.Tokens += len(sl.toks)
		}
	}
	for _, r := range m.cache.ram {
		st.Sequences++
		st.Tokens += len(r.toks)
	}
	return st
}
