// Package fake is an engine.Model in pure Go for tests of everything above
// the engine: the alphabet test model (package testmodel) computed without
// llama.cpp, with the same vocabulary, tokenizer and greedy rule, so a test
// gets the same text from the fake as from the real model.
package fake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/testmodel"
)

// Special tokens of the alphabet vocabulary.
const (
	BOS = engine.Token(testmodel.TokenBOS)
	EOS = engine.Token(testmodel.TokenEOS)
)

// Model is a fake engine.Model.
type Model struct {
	CtxSize int
	// Delay is slept in every Decode, to make generation slow enough to
	// cancel or to queue behind.
	Delay time.Duration
	// Slots bounds the sequences open at once (0: 1).
	Slots int
	// FailDecodeAt makes the n-th Decode of a sequence fail (0: never).
	FailDecodeAt int
	// NoCache turns the prompt cache off. With it on, the tokens of closed
	// sequences are kept (a few, most recent first) and a new prompt
	// reports the longest prefix it shares with them as cached, as the
	// llama engine does.
	NoCache bool

	mu      sync.Mutex
	open    int
	decodes int
	kept    [][]engine.Token
	stats   engine.CacheStats
}

// keptMax bounds the fake's cached sequences.
const keptMax = 8

// CacheStats implements engine.CacheReporter.
func (m *Model) CacheStats() engine.CacheStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	st.Enabled = !m.NoCache
	st.Sequences = len(m.kept)
	for _, k := range m.kept {
		st.Tokens += len(k)
	}
	return st
}

var _ engine.Model = (*Model)(nil)

// Decodes counts Decode calls over the model's life.
func (m *Model) Decodes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.decodes
}

func (m *Model) ctxSize() int {
	if m.CtxSize == 0 {
		return 512
	}
	return m.CtxSize
}

func (m *Model) Info() engine.Info {
	return engine.Info{Path: "fake", Description: "fake byte model", CtxSize: m.ctxSize(), CtxTrain: m.ctxSize(), VocabSize: testmodel.AlphabetVocabSize, Device: "cpu"}
}

func (m *Model) Tokenize(text string) ([]engine.Token, error) {
	toks := []engine.Token{BOS}
	for _, id := range testmodel.Tokenize(text) {
		toks = append(toks, engine.Token(id))
	}
	return toks, nil
}

// Piece fails for a token outside the vocabulary, as the llama engine does,
// so that tests above the engine see the same error paths.
func (m *Model) Piece(t engine.Token) ([]byte, error) {
	if t < 0 || int(t) >= testmodel.AlphabetVocabSize {
		return nil, fmt.Errorf("fake: token %d is outside the vocabulary of %d tokens", t, testmodel.AlphabetVocabSize)
	}
	return []byte(testmodel.Piece(int(t))), nil
}

func (m *Model) IsEOG(t engine.Token) bool { return t == EOS }

// ChatPrompt uses the plain format: the alphabet model has no template.
func (m *Model) ChatPrompt(msgs []engine.ChatMessage) (string, error) {
	return engine.PlainChat(msgs), nil
}

func (m *Model) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open >= max(m.Slots, 1) {
		return nil, errors.New("fake: no free slot")
	}
	m.open++
	return &seq{m: m}, nil
}

func (m *Model) Close() error { return nil }

type seq struct {
	m      *Model
	toks   []engine.Token
	cached int
	closed bool
}

func (s *seq) Prefill(ctx context.Context, prompt []engine.Token) error {
	if len(s.toks)+len(prompt) > s.m.ctxSize() {
		return engine.ErrContextFull
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(s.toks) == 0 {
		s.cached = s.m.lookup(prompt)
	}
	s.toks = append(s.toks, prompt...)
	return nil
}

// lookup counts prompt and returns how much of it the cache holds.
func (m *Model) lookup(prompt []engine.Token) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := 0
	if !m.NoCache {
		for _, k := range m.kept {
			n := 0
			for n < len(k) && n < len(prompt) && k[n] == prompt[n] {
				n++
			}
			best = max(best, min(n, len(prompt)-1))
		}
	}
	m.stats.PromptTokens += int64(len(prompt))
	m.stats.CachedTokens += int64(best)
	return best
}

func (s *seq) Sample() engine.Token {
	if len(s.toks) == 0 {
		return BOS
	}
	return engine.Token(testmodel.AlphabetNext(int(s.toks[len(s.toks)-1])))
}

func (s *seq) Decode(t engine.Token) error {
	if s.m.Delay > 0 {
		time.Sleep(s.m.Delay)
	}
	s.m.mu.Lock()
	s.m.decodes++
	s.m.mu.Unlock()
	if len(s.toks)+1 > s.m.ctxSize() {
		return engine.ErrContextFull
	}
	if s.m.FailDecodeAt > 0 && len(s.toks) >= s.m.FailDecodeAt {
		return errors.New("fake: injected decode failure")
	}
	s.toks = append(s.toks, t)
	return nil
}

func (s *seq) Len() int { return len(s.toks) }

func (s *seq) Close() {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.m.open--
		if !s.m.NoCache && len(s.toks) > 0 {
			s.m.kept = append([][]engine.Token{s.toks}, s.m.kept[:min(len(s.m.kept), keptMax-1)]...)
		}
	}
}

func (s *seq) Cached() int { return s.cached }
