package llama

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/testmodel"
)

// cacheModels are the models the prompt cache must not change a single
// greedy token on: a real F32 model, a real Q8_0 model and a random-weight
// model written by testmodel.
func cacheModels(t *testing.T) map[string]string {
	t.Helper()
	tiny := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := testmodel.WriteRandom(tiny, testmodel.Tiny, 7); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"stories260K": filepath.Join(sharedModels, "stories260K.gguf"),
		"656K-Q8_0":   filepath.Join(sharedModels, "TinyStories-656K-Q8_0.gguf"),
		"tiny-random": tiny,
	}
}

func loadCache(t *testing.T, path string, slots int, cacheRAM int64) *Model {
	t.Helper()
	m, err := Load(path, Options{Threads: 1, CtxSize: 256, Slots: slots, CacheRAM: cacheRAM})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// run generates n tokens after prompt (fewer at EOG) and returns them,
// with the prompt tokens the cache served.
func run(t *testing.T, m *Model, prompt []engine.Token, n int, s engine.Sampling) (out []engine.Token, cached int) {
	t.Helper()
	seq, err := m.NewSequence(s)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
	for range n {
		tok := seq.Sample()
		out = append(out, tok)
		if m.IsEOG(tok) {
			break
		}
		if err := seq.Decode(tok); err != nil {
			t.Fatal(err)
		}
	}
	return out, seq.Cached()
}

// words returns n tokens of text made of the model's own pieces: a prompt
// that the tokenizer and the model both handle.
func words(t *testing.T, m *Model, seed uint64, n int) []engine.Token {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var out []engine.Token
	for len(out) < n {
		tok := engine.Token(3 + r.IntN(m.info.VocabSize-3))
		if m.IsEOG(tok) {
			continue
		}
		if p, err := m.Piece(tok); err != nil || len(p) == 0 {
			continue
		}
		out = append(out, tok)
	}
	return out
}

func cat(parts ...[]engine.Token) []engine.Token {
	var out []engine.Token
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestCacheIdentical checks every way a prompt is served from the cache
// against the same model with the cache off: a reused slot, a prefix copied
// from another slot, a sequence restored from RAM, a prefix cut where the
// prompt diverges, and concurrent prompts sharing a prefix. Greedy output
// must match token for token, and a seeded sampled request too.
func TestCacheIdentical(t *testing.T) {
	for name, path := range cacheModels(t) {
		t.Run(name, func(t *testing.T) {
			greedy := engine.Sampling{}
			sampled := engine.Sampling{Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: 42}
			on := loadCache(t, path, 2, 0)
			off := loadCache(t, path, 2, -1)
			system := words(t, on, 1, 40)
			check := func(what string, prompt []engine.Token, s engine.Sampling, wantCached int) []engine.Token {
				t.Helper()
				want, c := run(t, off, prompt, 24, s)
				if c != 0 {
					t.Fatalf("%s: the cache-off model reports %d cached tokens", what, c)
				}
				got, cached := run(t, on, prompt, 24, s)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("%s: with the cache %v, without %v", what, got, want)
				}
				if wantCached >= 0 && cached != wantCached {
					t.Errorf("%s: %d prompt tokens cached, want %d", what, cached, wantCached)
				}
				return got
			}

			// A conversation: each turn is the last prompt, the reply and
			// new tokens, so all of the last turn but its last token is
			// in the slot.
			turn1 := cat(system, words(t, on, 2, 20))
			reply1 := check("turn 1", turn1, greedy, 0)
			turn2 := cat(turn1, reply1[:len(reply1)-1], words(t, on, 3, 12))
			reply2 := check("turn 2 (reused slot)", turn2, greedy, len(turn1)+len(reply1)-1)

			// Another conversation with the same system prompt copies it
			// into the other slot and leaves the first one alone.
			other := cat(system, words(t, on, 4, 20))
			check("shared system prompt (copied prefix)", other, greedy, len(system))
			turn3 := cat(turn2, reply2[:len(reply2)-1], words(t, on, 5, 8))
			check("turn 3 after the other conversation", turn3, sampled, len(turn2)+len(reply2)-1)

			// Diverging in the middle: the slot is cut there.
			cut := len(turn3) * 3 / 4
			check("divergent prefix", cat(turn3[:cut], words(t, on, 6, 10)), greedy, cut)

			// Two new conversations push both slots out to RAM; the first
			// conversation comes back restored.
			check("new conversation A", words(t, on, 7, 30), greedy, 0)
			check("new conversation B", words(t, on, 8, 30), greedy, 0)
			if st := on.CacheStats(); st.RAMBytes == 0 {
				t.Fatalf("nothing saved to RAM: %+v", st)
			}
			again := cat(turn3[:cut], words(t, on, 6, 10))
			check("restored sequence", cat(again, words(t, on, 9, 5)), greedy, len(again))

			// Concurrent prompts sharing a long prefix: each equals its
			// run alone, and the prefix is served to all but one.
			long := words(t, on, 10, 100)
			var wg sync.WaitGroup
			prompts := make([][]engine.Token, 3)
			outs := make([][]engine.Token, 3)
			cached := make([]int, 3)
			for i := range prompts {
				prompts[i] = cat(long, words(t, on, uint64(20+i), 10))
			}
			fresh := loadCache(t, path, 3, 0)
			for i := range prompts {
				wg.Go(func() { outs[i], cached[i] = run(t, fresh, prompts[i], 16, greedy) })
			}
			wg.Wait()
			total := 0
			for i := range prompts {
				want, _ := run(t, off, prompts[i], 16, greedy)
				if fmt.Sprint(outs[i]) != fmt.Sprint(want) {
					t.Errorf("concurrent %d: with the cache %v, alone without %v", i, outs[i], want)
				}
				total += cached[i]
			}
			if total < 2*len(long) {
				t.Errorf("concurrent prompts with a %d-token shared prefix had %v tokens cached: the prefix was evaluated more than once", len(long), cached)
			}
		})
	}
}

// TestCacheBounded runs many short random conversations through a small RAM
// budget: the RAM tier never exceeds it, and the cache holds at most the
// idle slots plus what fits.
func TestCacheBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alphabet.gguf")
	if err := testmodel.WriteAlphabet(path); err != nil {
		t.Fatal(err)
	}
	const budget = 200 << 10
	m, err := Load(path, Options{Threads: 1, CtxSize: 128, Slots: 2, CacheRAM: budget})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	r := rand.New(rand.NewPCG(3, 3))
	convs := make([][]engine.Token, 12)
	maxSeqs := 0
	for i := range 300 {
		c := r.IntN(len(convs))
		if len(convs[c]) == 0 || len(convs[c]) > 90 {
			convs[c] = []engine.Token{testmodel.TokenBOS}
		}
		for range 5 + r.IntN(15) {
			convs[c] = append(convs[c], engine.Token(testmodel.CharToken(rune('a'+r.IntN(26)))))
		}
		out, cached := run(t, m, convs[c], 1+r.IntN(8), engine.Sampling{})
		if cached >= len(convs[c]) {
			t.Fatalf("request %d: %d of %d prompt tokens cached", i, cached, len(convs[c]))
		}
		if !m.IsEOG(out[len(out)-1]) {
			convs[c] = append(convs[c], out[:len(out)-1]...)
		}
		st := m.CacheStats()
		if st.RAMBytes > budget || st.RAMBytes < 0 {
			t.Fatalf("request %d: %d bytes in RAM, budget %d", i, st.RAMBytes, budget)
		}
		maxSeqs = max(maxSeqs, st.Sequences)
	}
	st := m.CacheStats()
	if st.CachedTokens == 0 || st.PromptTokens <= st.CachedTokens {
		t.Errorf("cache stats after the soak: %+v", st)
	}
	t.Logf("after 300 requests: %+v, at most %d sequences cached", st, maxSeqs)
}

// When llama.cpp finds no room for a batch, the scheduler empties the idle
// slots (saving them to RAM) and retries: cached sequences give way to
// running ones, and come back from RAM later.
func TestEvictIdleForRunning(t *testing.T) {
	m := loadCache(t, filepath.Join(sharedModels, "stories260K.gguf"), 2, 0)
	prompt := words(t, m, 1, 60)
	out, _ := run(t, m, prompt, 8, engine.Sampling{})
	m.mu.Lock()
	freed := m.evictIdle()
	m.mu.Unlock()
	if st := m.CacheStats(); !freed || st.RAMBytes == 0 || st.Sequences != 1 {
		t.Fatalf("after evicting: freed %v, %+v", freed, st)
	}
	next := cat(prompt, out[:len(out)-1], words(t, m, 2, 5))
	if _, cached := run(t, m, next, 1, engine.Sampling{}); cached != len(prompt)+len(out)-1 {
		t.Errorf("%d cached after the restore, want %d", cached, len(prompt)+len(out)-1)
	}
}
