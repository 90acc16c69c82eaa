package llama

import (
	"context"
	"path/filepath"
	"strings"
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
		out = append(out, m.Piece(tok)...)
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
