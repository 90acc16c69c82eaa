// Command worker benchmarks llm-worker-rbee against llama.cpp called
// in-process, on the same model, threads and prompt, and prints a table:
// time to first token and decode tokens/s of each, their ratio, and decode
// speed as a share of this machine's memory-bandwidth ceiling.
//
//	make build && go run ./bench/worker [-model M.gguf] [-runs 5] [-tokens 64]
//
// Without -model it writes (once, cached) a random-weight model of the
// Qwen2-0.5B layout in Q8_0.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rbee/rbee/bench/harness"
	"github.com/rbee/rbee/bench/membw"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

func main() {
	var (
		model   = flag.String("model", "", "GGUF model (default: a cached random Qwen2-0.5B-shape Q8_0 model)")
		bin     = flag.String("worker", "bin/llm-worker-rbee", "worker binary")
		threads = flag.Int("threads", 2, "threads for both")
		tokens  = flag.Int("tokens", 64, "tokens to generate per run")
		runs    = flag.Int("runs", 5, "measured runs of each (after one warm-up)")
		prompt  = flag.String("prompt", strings.Repeat("The quick brown fox jumps over the lazy dog. ", 8), "prompt")
	)
	flag.Parse()
	log.SetFlags(0)
	if *model == "" {
		*model = harness.CachedModel(testmodel.Qwen2_0_5B)
	}
	f, err := gguf.Check(*model)
	if err != nil {
		log.Fatal(err)
	}

	m, err := llama.Load(*model, llama.Options{Threads: *threads, CtxSize: 1024})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	w, err := harness.StartWorker(*bin, *model, "--threads", fmt.Sprint(*threads), "--ctx-size", "1024", "--slots", "1")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()

	var eng, wrk []sample
	for i := range *runs + 1 {
		e := inProcess(m, *prompt, *tokens)
		h, err := overHTTP(w.Client, *prompt, *tokens)
		if err != nil {
			log.Fatal(err)
		}
		if i > 0 { // the first round warms caches and pages in the weights
			eng, wrk = append(eng, e), append(wrk, h)
		}
	}
	bw := membw.Measure(1<<30, *threads, 3)

	info := m.Info()
	weights := float64(f.TensorBytes())
	ceiling := bw / weights
	fmt.Printf("model: %s (%s, %.0fM params, %.0f MiB of weights), %d threads, prompt %d tokens, %d new tokens, median of %d runs\n\n",
		filepath.Base(*model), info.Description, float64(info.Params)/1e6, weights/(1<<20), *threads, eng[0].promptTokens, *tokens, *runs)
	fmt.Printf("| %-26s | %12s | %13s |\n", "", "TTFT ms", "decode tok/s")
	fmt.Printf("|%s|%s|%s|\n", strings.Repeat("-", 28), strings.Repeat("-", 14), strings.Repeat("-", 15))
	et, ed := medians(eng)
	wt, wd := medians(wrk)
	fmt.Printf("| %-26s | %12.1f | %13.2f |\n", "(a) engine in-process", et, ed)
	fmt.Printf("| %-26s | %12.1f | %13.2f |\n", "(b) worker over HTTP+SSE", wt, wd)
	fmt.Printf("| %-26s | %12.3f | %13.3f |\n", "ratio b/a", wt/et, wd/ed)
	fmt.Printf("\nmemory read bandwidth %.1f GB/s (%d threads); weights read per token %.0f MiB; ceiling %.1f tok/s\n",
		bw/1e9, *threads, weights/(1<<20), ceiling)
	fmt.Printf("decode as a share of the ceiling: engine %.0f%%, worker %.0f%%\n", 100*ed/ceiling, 100*wd/ceiling)
}

type sample struct {
	ttft         time.Duration
	decodeTPS    float64
	promptTokens int
}

func medians(s []sample) (ttftMs, tps float64) {
	t := make([]float64, len(s))
	d := make([]float64, len(s))
	for i, x := range s {
		t[i], d[i] = float64(x.ttft.Microseconds())/1000, x.decodeTPS
	}
	slices.Sort(t)
	slices.Sort(d)
	return t[len(t)/2], d[len(d)/2]
}

// inProcess generates exactly n tokens greedily, ignoring end-of-generation
// tokens so both sides do the same work.
func inProcess(m engine.Model, prompt string, n int) sample {
	start := time.Now()
	toks, err := m.Tokenize(prompt)
	if err != nil {
		log.Fatal(err)
	}
	seq, err := m.NewSequence(engine.Sampling{})
	if err != nil {
		log.Fatal(err)
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		log.Fatal(err)
	}
	tok := seq.Sample()
	if _, err := m.Piece(tok); err != nil {
		log.Fatal(err)
	}
	first := time.Now()
	for range n - 1 {
		if err := seq.Decode(tok); err != nil {
			log.Fatal(err)
		}
		tok = seq.Sample()
		if _, err := m.Piece(tok); err != nil {
			log.Fatal(err)
		}
	}
	return sample{ttft: first.Sub(start), decodeTPS: float64(n-1) / time.Since(first).Seconds(), promptTokens: len(toks)}
}

func overHTTP(c *workerclient.Client, prompt string, n int) (sample, error) {
	zero := 0.0
	start := time.Now()
	var first, last time.Time
	end, err := c.Generate(context.Background(), wire.InferenceRequest{Prompt: prompt, MaxTokens: &n, Temperature: &zero}, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			last = time.Now()
			if first.IsZero() {
				first = last
			}
		}
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	if end.TokensOut != n {
		return sample{}, fmt.Errorf("the worker stopped after %d of %d tokens (%s); the rates would not compare", end.TokensOut, n, end.StopReason)
	}
	return sample{ttft: first.Sub(start), decodeTPS: float64(n-1) / last.Sub(first).Seconds(), promptTokens: end.TokensIn}, nil
}
