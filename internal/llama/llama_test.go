package llama

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/engine"
)

const sharedModels = "../../../shared/models"

func loadShared(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Load(filepath.Join(sharedModels, name), Options{Threads: 1, CtxSize: 512})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func generate(t *testing.T, m engine.Model, prompt string, n int, s engine.Sampling) string {
	t.Helper()
	toks, err := m.Tokenize(prompt)
	if err != nil {
		t.Fatal(err)
	}
	seq, err := m.NewSequence(s)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		t.Fatal(err)
	}
	var out []byte
	for range n {
		tok := seq.Sample()
		if m.IsEOG(tok) {
			break
		}
		piece, err := m.Piece(tok)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, piece...)
		if err := seq.Decode(tok); err != nil {
			t.Fatal(err)
		}
	}
	return string(out)
}

func TestStories260KGreedy(t *testing.T) {
	m := loadShared(t, "stories260K.gguf")
	toks, _ := m.Tokenize("Once upon a time")
	if got, want := toks, []engine.Token{1, 403, 407, 261, 378}; !equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	got := generate(t, m, "Once upon a time", 64, engine.Sampling{})
	want := ", there was a little girl named Lily. She loved to play outside in the park."
	if !strings.HasPrefix(got, want) {
		t.Fatalf("greedy output %q, want prefix %q", got, want)
	}
}

func equal(a, b []engine.Token) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Two sequences decoded turn about give each the text it gets alone: the
// slots keep their own KV cache and their own sampled token.
func TestInterleavedSequences(t *testing.T) {
	path := filepath.Join(sharedModels, "stories260K.gguf")
	m, err := Load(path, Options{Threads: 1, CtxSize: 256, Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := []string{"Once upon a time", "The dog"}
	var want []string
	for _, p := range prompts {
		want = append(want, generate(t, m, p, 24, engine.Sampling{}))
	}
	seqs := make([]engine.Sequence, 2)
	out := make([][]byte, 2)
	for i, p := range prompts {
		toks, _ := m.Tokenize(p)
		if seqs[i], err = m.NewSequence(engine.Sampling{}); err != nil {
			t.Fatal(err)
		}
		defer seqs[i].Close()
		if err := seqs[i].Prefill(context.Background(), toks); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.NewSequence(engine.Sampling{}); err != ErrNoSlot {
		t.Fatalf("third sequence: %v, want ErrNoSlot", err)
	}
	done := make([]bool, 2)
	for step := 0; step < 24; step++ {
		for i, s := range seqs {
			if done[i] {
				continue
			}
			tok := s.Sample()
			if m.IsEOG(tok) {
				done[i] = true
				continue
			}
			piece, err := m.Piece(tok)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = append(out[i], piece...)
			if err := s.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range prompts {
		if string(out[i]) != want[i] {
			t.Errorf("sequence %d interleaved %q, alone %q", i, out[i], want[i])
		}
	}
}

func TestContextFull(t *testing.T) {
	m, err := Load(filepath.Join(sharedModels, "stories260K.gguf"), Options{Threads: 1, CtxSize: 16, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seq, _ := m.NewSequence(engine.Sampling{})
	defer seq.Close()
	long := make([]engine.Token, m.Info().CtxSize+1)
	for i := range long {
		long[i] = 300
	}
	if err := seq.Prefill(context.Background(), long); err != engine.ErrContextFull {
		t.Fatalf("prefill past the context: %v", err)
	}
	// Exactly the context fits, in more than one batch, and then it is full.
	if err := seq.Prefill(context.Background(), long[:m.Info().CtxSize]); err != nil {
		t.Fatal(err)
	}
	if err := seq.Decode(300); err != engine.ErrContextFull {
		t.Fatalf("decode past the context: %v", err)
	}
}

// Sequences generating at once from their own goroutines share
// llama_decode calls and still each get the text they get alone.
func TestContinuousBatching(t *testing.T) {
	m, err := Load(filepath.Join(sharedModels, "stories260K.gguf"), Options{Threads: 1, CtxSize: 256, Slots: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	prompts := []string{"Once upon a time", "The dog", "Lily and Tom", "One day"}
	const n = 24
	want := make([]string, len(prompts))
	for i, p := range prompts {
		want[i] = generate(t, m, p, n, engine.Sampling{})
	}
	before := m.Decodes()
	got := make([]string, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() { got[i] = generate(t, m, p, n, engine.Sampling{}) })
	}
	wg.Wait()
	for i := range prompts {
		if got[i] != want[i] {
			t.Errorf("%q: batched %q, alone %q", prompts[i], got[i], want[i])
		}
	}
	// Alone, each sequence needs a prefill and n-1 decodes.
	if calls := m.Decodes() - before; calls >= int64(len(prompts)*n/2) {
		t.Errorf("%d llama_decode calls for %d sequences of %d tokens: not batched", calls, len(prompts), n)
	}
}
