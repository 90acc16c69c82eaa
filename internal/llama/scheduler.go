package llama

/*
#include "bridge.h"
*/
import "C"

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rbee/rbee/internal/engine"
)

// gatherWait bounds how long a step waits for the other open sequences to
// submit theirs, so that they share one llama_decode. Sequences resubmit
// microseconds after their previous step, so this is rarely reached; a
// sequence that stopped submitting (it is about to close) costs at most this.
const gatherWait = 2 * time.Millisecond

// step is a piece of work for one sequence: tokens to append to its KV
// cache, then a token to sample.
type step struct {
	seq   *sequence
	toks  []engine.Token
	done  int             // tokens already evaluated (or served by the cache)
	ctx   context.Context // nil: cannot be abandoned
	place bool            // the sequence's first prompt: it needs a slot
	reply chan error
}

// scheduler runs continuous batching: one goroutine takes the pending
// steps of every open sequence and evaluates them in a single llama_decode
// (next tokens first, then as much prompt as the batch holds). It runs
// while sequences are open and exits when the last one closes.
type scheduler struct {
	decodes atomic.Int64 // llama_decode calls, for tests and benchmarks

	mu      sync.Mutex
	pending []*step
	active  int // open sequences
	running bool
	wake    chan struct{}
}

func (s *scheduler) opened(m *Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	s.active++
	if !s.running {
		s.running = true
		go m.schedule()
	}
}

func (s *scheduler) closed() {
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
	s.signal()
}

func (s *scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *scheduler) submit(m *Model, st *step) error {
	st.reply = make(chan error, 1)
	s.mu.Lock()
	s.pending = append(s.pending, st)
	s.mu.Unlock()
	s.signal()
	return <-st.reply
}

// take waits for work and returns it, or nil when the loop should end.
func (s *scheduler) take() []*step {
	deadline := time.Time{}
	for {
		s.mu.Lock()
		n, active := len(s.pending), s.active
		if n == 0 && active == 0 {
			s.running = false
			s.mu.Unlock()
			return nil
		}
		if n > 0 && (n >= active || (!deadline.IsZero() && time.Now().After(deadline))) {
			steps := s.pending
			s.pending = nil
			s.mu.Unlock()
			return steps
		}
		s.mu.Unlock()
		if n > 0 && deadline.IsZero() {
			deadline = time.Now().Add(gatherWait)
		}
		if deadline.IsZero() {
			<-s.wake
			continue
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (m *Model) schedule() {
	for {
		steps := m.sched.take()
		if steps == nil {
			return
		}
		left := m.evaluate(steps)
		if len(left) > 0 {
			m.sched.mu.Lock()
			m.sched.pending = append(left, m.sched.pending...)
			m.sched.mu.Unlock()
		}
	}
}

// entry is the part of a step that went into this batch.
type entry struct {
	st       *step
	from, to int // step tokens [from, to) are in the batch
	last     int // batch index of the step's token at to-1
}

// evaluate puts as much of steps as fits into one batch, decodes it, samples
// for the steps that finished and answers them. It returns the steps that
// still have prompt left. Once a decode failed fatally, every step gets that
// error: the KV cache may hold half of a batch.
func (m *Model) evaluate(steps []*step) (left []*step) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		for _, st := range steps {
			st.reply <- m.failed
		}
		return nil
	}
	steps, left = m.placeAll(steps)
	var entries []entry
	n := 0
	// Next tokens of running sequences first, then prompts.
	for pass := 0; pass < 2; pass++ {
		for _, st := range steps {
			if (len(st.toks) == 1) != (pass == 0) {
				continue
			}
			if st.ctx != nil && st.ctx.Err() != nil {
				st.reply <- st.ctx.Err()
				continue
			}
			take := min(len(st.toks)-st.done, m.nb-n)
			if take <= 0 {
				left = append(left, st)
				continue
			}
			entries = append(entries, entry{st: st, from: st.done, to: st.done + take, last: n + take - 1})
			n += take
		}
	}
	if len(entries) == 0 {
		return left
	}
	err := m.decodeEntries(entries)
	// Cached sequences give way to running ones.
	if errors.Is(err, ErrKVCacheFull) && m.evictIdle() {
		err = m.decodeEntries(entries)
	}
	if err == nil {
		for _, e := range entries {
			left = append(left, m.finish(e)...)
		}
		return left
	}
	if len(entries) == 1 || m.failed != nil {
		for _, e := range entries {
			e.st.seq.broken = true
			e.st.reply <- err
		}
		return left
	}
	// A full KV cache or an invalid batch may be down to one sequence, and
	// must not fail the others: retry each alone, and only the ones that
	// fail again get the error. After a fatal error there is nothing to
	// retry on.
	for _, e := range entries {
		if m.failed != nil {
			e.st.seq.broken = true
			e.st.reply <- m.failed
			continue
		}
		e.last = e.to - e.from - 1
		if err := m.decodeEntries([]entry{e}); err != nil {
			e.st.seq.broken = true
			e.st.reply <- err
			continue
		}
		left = append(left, m.finish(e)...)
	}
	return left
}

// finish records a decoded entry; a finished step gets its sample and its
// answer, an unfinished one is returned to run again.
func (m *Model) finish(e entry) []*step {
	st := e.st
	st.seq.n += e.to - e.from
	sl := &m.slots[st.seq.id]
	sl.toks = append(sl.toks, st.toks[e.from:e.to]...)
	st.done = e.to
	if st.done < len(st.toks) {
		return []*step{st}
	}
	st.seq.next = st.seq.sample(e.last)
	st.reply <- nil
	return nil
}

func (m *Model) decodeEntries(entries []entry) error {
	n := 0
	for _, e := range entries {
		st := e.st
		for i := e.from; i < e.to; i++ {
			logits := C.int8_t(0)
			if i == len(st.toks)-1 {
				logits = 1
			}
			C.rbee_batch_set(&m.batch, C.int(n), C.llama_token(st.toks[i]), C.llama_pos(st.seq.n+i-e.from), st.seq.id, logits)
			n++
		}
	}
	m.batch.n_tokens = C.int32_t(n)
	m.sched.decodes.Add(1)
	if err := decodeStatus(int(C.llama_decode(m.ctx, m.batch))); err != nil {
		if err.Fatal() {
			m.failed = err
		}
		return err
	}
	return nil
}

// Decodes counts the llama_decode calls so far: with several sequences
// generating at once it grows slower than the tokens do.
func (m *Model) Decodes() int64 { return m.sched.decodes.Load() }

// placeAll gives the steps that start a sequence their slot and cached
// prefix, in arrival order. A step whose prompt shares a longer prefix with
// a prompt still being evaluated than with anything cached waits for that
// evaluation and then copies it, so that requests arriving together with
// one system prompt evaluate it once. It returns the steps ready to run and
// those that wait.
func (m *Model) placeAll(steps []*step) (ready, wait []*step) {
	for _, st := range steps {
		if !st.place {
			ready = append(ready, st)
			continue
		}
		if st.ctx != nil && st.ctx.Err() != nil {
			st.reply <- st.ctx.Err()
			continue
		}
		if m.cache.on && m.worthWaiting(st, steps) {
			wait = append(wait, st)
			continue
		}
		st.place = false
		st.done = m.place(st.seq, st.toks)
		st.seq.n, st.seq.cached = st.done, st.done
		ready = append(ready, st)
	}
	return ready, wait
}

// worthWaiting reports whether a placed step still evaluating its prompt
// will soon hold a longer prefix of st's prompt than the cache does now.
func (m *Model) worthWaiting(st *step, steps []*step) bool {
	shared := 0
	for _, o := range steps {
		if o == st || o.place || o.done >= len(o.toks) || len(o.toks) == 1 {
			continue
		}
		if n := lcp(o.toks, st.toks); n > o.done {
			shared = max(shared, n)
		}
	}
	if shared < minReuse {
		return false
	}
	have := 0
	for j := range m.slots {
		have = max(have, lcp(m.slots[j].toks, st.toks))
	}
	for _, r := range m.cache.ram {
		have = max(have, lcp(r.toks, st.toks))
	}
	return shared >= have+minReuse
}
