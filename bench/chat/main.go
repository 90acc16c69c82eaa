// Command chat measures the prompt cache on conversations: time to first
// token of each turn with the cache and without it, against the time
// llama.cpp takes to evaluate only the turn's new tokens; the share of
// prompt tokens served when many conversations share a worker; restoring
// a sequence from RAM against recomputing it; and, through a queen with two
// workers, the cache hits of cache-aware routing against the policy alone.
//
//	go run ./bench/chat [-model M.gguf] [-threads 2] [-convs 16] [-turns 8]
//
// The engine parts feed tokens, not text: a conversation's next prompt is
// its last prompt, the tokens generated and the new user tokens, as a
// client's history is when the template and tokenizer reproduce them.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/bench/harness"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testmodel"
)

var (
	threads = flag.Int("threads", 2, "decode threads")
	system  = flag.Int("system", 1000, "system prompt tokens")
	user    = flag.Int("user", 60, "user tokens added each turn")
	gen     = flag.Int("gen", 60, "tokens generated each turn")
	turns   = flag.Int("turns", 8, "turns per conversation")
	convs   = flag.Int("convs", 16, "conversations interleaved over one worker")
	slots   = flag.Int("slots", 4, "slots of the worker the conversations share")
	offN    = flag.Int("off-convs", 4, "conversations measured with the cache off at the last turn (each costs a whole prompt)")
	parts   = flag.String("parts", "one,crossover,interleaved,routing", "which parts to run")
	fleet   = flag.String("fleet-model", filepath.Join("..", "shared", "models", "stories260K.gguf"), "model of the two-worker queen part (text must survive detokenizing and tokenizing again)")
)

func main() {
	model := flag.String("model", "", "GGUF model (default: a cached random Qwen2-0.5B-shape Q8_0 model)")
	flag.Parse()
	log.SetFlags(0)
	if *model == "" {
		*model = harness.CachedModel(testmodel.Qwen2_0_5B)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("model %s, %d threads, load average %s\n", filepath.Base(*model), *threads, strings.Join(strings.Fields(string(load))[:3], " "))
	ctx := *system + *turns*(*user+*gen) + 64

	run := func(part string, f func()) {
		if slices.Contains(strings.Split(*parts, ","), part) {
			f()
		}
	}
	run("one", func() { oneConversation(*model, ctx) })
	run("crossover", func() { crossover(*model) })
	run("interleaved", func() { interleaved(*model, ctx) })
	run("routing", func() { routing(*fleet) })
}

func loadModel(path string, ctx, slots int, cacheRAM int64) *llama.Model {
	m, err := llama.Load(path, llama.Options{Threads: *threads, CtxSize: ctx, Slots: slots, CacheRAM: cacheRAM})
	if err != nil {
		log.Fatal(err)
	}
	return m
}

// tokens returns n tokens the model renders as text, none of them EOG.
func tokens(m *llama.Model, r *rand.Rand, n int) []engine.Token {
	out := make([]engine.Token, 0, n)
	for len(out) < n {
		t := engine.Token(3 + r.IntN(m.Info().VocabSize-3))
		if p, err := m.Piece(t); err == nil && len(p) > 0 && !m.IsEOG(t) {
			out = append(out, t)
		}
	}
	return out
}

// turn runs one request: it returns the time to the first token, the
// tokens the cache served and the generated tokens (exactly n: EOG is
// passed over, so every run does the same work).
func turn(m *llama.Model, prompt []engine.Token, n int) (time.Duration, int, []engine.Token) {
	start := time.Now()
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), prompt); err != nil {
		log.Fatal(err)
	}
	tok := seq.Sample()
	ttft := time.Since(start)
	out := []engine.Token{tok}
	for len(out) < n {
		if err := seq.Decode(tok); err != nil {
			log.Fatal(err)
		}
		tok = seq.Sample()
		out = append(out, tok)
	}
	return ttft, seq.Cached(), out
}

// evalOnly is the time llama.cpp takes to evaluate fresh on top of prefix
// in one sequence, and to sample after it: the work a perfect cache leaves.
func evalOnly(m *llama.Model, prefix, fresh []engine.Token) time.Duration {
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), prefix); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	if err := seq.Prefill(context.Background(), fresh); err != nil {
		log.Fatal(err)
	}
	seq.Sample()
	return time.Since(start)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func oneConversation(path string, ctx int) {
	on := loadModel(path, ctx, 1, 0)
	defer on.Close()
	off := loadModel(path, ctx, 1, -1)
	defer off.Close()
	// The baseline model evaluates the new tokens on a sequence it keeps
	// open: no cache involved.
	base := loadModel(path, ctx, 1, -1)
	defer base.Close()
	r := rand.New(rand.NewPCG(1, 1))
	prompt := tokens(on, r, *system)
	fmt.Printf("\n## One conversation: %d-token system prompt, %d turns of %d user + %d generated tokens, 1 slot\n\n", *system, *turns, *user, *gen)
	fmt.Println("| turn | prompt tokens | cached | new | TTFT cache on ms | TTFT cache off ms | eval new only ms | on / (1.25 eval + 10 ms) | off / on |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	var prev []engine.Token
	for k := 1; k <= *turns; k++ {
		prompt = append(prompt, tokens(on, r, *user)...)
		tOn, cached, out := turn(on, prompt, *gen)
		tOff, _, outOff := turn(off, prompt, *gen)
		if !slices.Equal(out, outOff) {
			log.Fatalf("turn %d: the cache changed the greedy output", k)
		}
		// What a perfect cache would leave: the tokens after the last
		// turn's prompt and reply.
		done := len(prev)
		if k == 1 {
			done = 0
		}
		eval := tOff
		if k > 1 {
			eval = evalOnly(base, prompt[:done], prompt[done:])
		}
		goal := 1.25*ms(eval) + 10
		fmt.Printf("| %d | %d | %d | %d | %.1f | %.1f | %.1f | %.2f | %.1fx |\n", k, len(prompt), cached, len(prompt)-done,
			ms(tOn), ms(tOff), ms(eval), ms(tOn)/goal, ms(tOff)/ms(tOn))
		prompt = append(prompt, out...)
		prev = prompt
	}
}

// crossover compares restoring a sequence of n tokens from RAM (then
// evaluating one token) with evaluating all n.
func crossover(path string) {
	on := loadModel(path, 2048, 1, 0)
	defer on.Close()
	off := loadModel(path, 2048, 1, -1)
	defer off.Close()
	r := rand.New(rand.NewPCG(2, 2))
	fmt.Println("\n## Restore from RAM against recompute (TTFT of a prompt of n+1 tokens whose first n were saved)")
	fmt.Println()
	fmt.Println("| n tokens | restore + 1 token ms | recompute ms | recompute / restore |")
	fmt.Println("|---:|---:|---:|---:|")
	for _, n := range []int{16, 32, 64, 128, 256, 512, 1024} {
		a := tokens(on, r, n+1)
		turn(on, a[:n], 1)
		turn(on, tokens(on, r, n), 1) // evicts a's slot to RAM
		tRestore, cached, _ := turn(on, a, 1)
		if cached != n {
			log.Fatalf("n=%d: %d cached: not restored", n, cached)
		}
		tOff, _, _ := turn(off, a, 1)
		fmt.Printf("| %d | %.1f | %.1f | %.1fx |\n", n, ms(tRestore), ms(tOff), ms(tOff)/ms(tRestore))
	}
}

// interleaved runs convs conversations over one worker with slots slots,
// slots of them at a time, turn by turn.
func interleaved(path string, ctx int) {
	on := loadModel(path, ctx, *slots, 0)
	defer on.Close()
	r := rand.New(rand.NewPCG(3, 3))
	sys := tokens(on, r, *system)
	prompts := make([][]engine.Token, *convs)
	for i := range prompts {
		prompts[i] = slices.Clone(sys)
	}
	var mu sync.Mutex
	var promptTok, cachedTok int
	lastOn := make([]time.Duration, *convs)
	for k := 1; k <= *turns; k++ {
		for i := range prompts {
			prompts[i] = append(prompts[i], tokens(on, r, *user)...)
		}
		sem := make(chan struct{}, *slots)
		var wg sync.WaitGroup
		for i := range prompts {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t, c, out := turn(on, prompts[i], *gen)
				mu.Lock()
				promptTok += len(prompts[i])
				cachedTok += c
				mu.Unlock()
				prompts[i] = append(prompts[i], out...)
				if k == *turns {
					lastOn[i] = t
				}
			})
		}
		wg.Wait()
	}
	st := on.CacheStats()
	on.Close()

	// The cache off, at the last turn only: a few conversations, slots at
	// a time, as above.
	off := loadModel(path, ctx, *slots, -1)
	defer off.Close()
	lastOff := make([]time.Duration, *offN)
	var wg sync.WaitGroup
	for i := range lastOff {
		wg.Go(func() {
			last := prompts[i][:len(prompts[i])-*gen]
			lastOff[i], _, _ = turn(off, last, 1)
		})
	}
	wg.Wait()
	fmt.Printf("\n## %d conversations interleaved over %d slots (%d turns; RAM budget %d MiB)\n\n", *convs, *slots, *turns, llama.DefaultCacheRAM>>20)
	fmt.Println("| prompt tokens | served by the cache | share | RAM used MiB | median TTFT turn 8 cache on ms | median TTFT turn 8 cache off ms | off / on |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	mOn, mOff := median(lastOn), median(lastOff)
	fmt.Printf("| %d | %d | %.1f%% | %.0f | %.1f | %.1f | %.1fx |\n", promptTok, cachedTok, 100*float64(cachedTok)/float64(promptTok),
		float64(st.RAMBytes)/(1<<20), ms(mOn), ms(mOff), ms(mOff)/ms(mOn))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
