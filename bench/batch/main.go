// Command batch measures continuous batching: the aggregate decode speed of
// one worker serving 1, 2, 4 and 8 streams at once, on a random-weight
// model of the Qwen2-0.5B layout in Q8_0, and prints a table.
//
//	make build && go run ./bench/batch [-tokens 48] [-threads 2]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/rbee/rbee/bench/harness"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

func main() {
	var (
		model   = flag.String("model", "", "GGUF model (default: a cached random Qwen2-0.5B-shape Q8_0 model)")
		bin     = flag.String("worker", "bin/llm-worker-rbee", "worker binary")
		threads = flag.Int("threads", 2, "worker threads")
		tokens  = flag.Int("tokens", 48, "tokens each stream generates")
	)
	flag.Parse()
	log.SetFlags(0)
	if *model == "" {
		*model = harness.CachedModel(testmodel.Qwen2_0_5B)
	}
	w, err := harness.StartWorker(*bin, *model, "--threads", fmt.Sprint(*threads), "--slots", "8", "--ctx-size", "512")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Stop()

	if _, err := run(w, 1, 8); err != nil { // warm-up
		log.Fatal(err)
	}
	fmt.Printf("model %s, %d threads, %d tokens per stream, greedy\n\n", *model, *threads, *tokens)
	fmt.Printf("| streams | aggregate decode tok/s | per stream tok/s | vs 1 stream |\n|---|---|---|---|\n")
	var base float64
	for _, n := range []int{1, 2, 4, 8} {
		rate, err := run(w, n, *tokens)
		if err != nil {
			log.Fatal(err)
		}
		if n == 1 {
			base = rate
		}
		fmt.Printf("| %d | %.1f | %.1f | %.2fx |\n", n, rate, rate/float64(n), rate/base)
	}
}

// run starts n streams at once and returns the tokens they decoded per
// second of wall time, from the first token of any stream to the last token
// of all (prompt evaluation is left out, as it is compute-bound).
func run(w *harness.Worker, n, tokens int) (float64, error) {
	zero := 0.0
	var (
		mu          sync.Mutex
		first, last time.Time
		total       int
		errs        []error
		wg          sync.WaitGroup
	)
	for i := range n {
		wg.Go(func() {
			req := wire.InferenceRequest{Prompt: fmt.Sprintf("Stream %d says:", i), MaxTokens: &tokens, Temperature: &zero}
			end, err := w.Client.Generate(context.Background(), req, func(e wire.Event) error {
				if e.Type == wire.TypeToken {
					now := time.Now()
					mu.Lock()
					if first.IsZero() || now.Before(first) {
						first = now
					}
					if now.After(last) {
						last = now
					}
					mu.Unlock()
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if end.TokensOut != tokens {
				errs = append(errs, fmt.Errorf("a stream stopped after %d of %d tokens (%s)", end.TokensOut, tokens, end.StopReason))
			}
			total += end.TokensOut
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, errs[0]
	}
	// The first token of each stream comes out of its prefill.
	return float64(total-n) / last.Sub(first).Seconds(), nil
}
