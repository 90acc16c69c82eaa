// Command openai measures the queen's OpenAI-compatible API and prints two
// tables:
//
//  1. A streamed chat completion through queen-rbee's /v1/chat/completions
//     against the same request sent straight to the worker (the real
//     binaries, one warm worker with one thread, greedy): time to first
//     token and decode tokens per second, median of -runs.
//
//  2. Small non-streaming completions (/v1/completions, 4 tokens) against
//     in-process fake workers that answer at once: the requests per second
//     the queen sustains at each of -conc concurrent clients, and its
//     latency at p50 and p99 against the same requests sent straight to the
//     fake workers; the difference is what the queen adds (one client shows
//     the cost of one request; more show throughput, and queueing on a
//     small machine).
//
// Everything runs on loopback in a temporary HOME; on a 2-core machine the
// load generator, the queen and the fake workers share the cores.
//
//	make build && go run ./bench/openai [-bin bin] [-model M.gguf] [-runs 10] [-tokens 128] [-conc 1,16] [-duration 5s] [-workers 4] [-reps 3]
package main

import (
	"flag"
	"fmt"
	"log"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		bin      = flag.String("bin", "bin", "directory of queen-rbee and llm-worker-rbee (make build)")
		model    = flag.String("model", "../shared/models/stories260K.gguf", "GGUF model for the streaming table")
		runs     = flag.Int("runs", 10, "measured streamed requests per path (after one warm-up)")
		tokens   = flag.Int("tokens", 128, "max_tokens of each streamed request")
		concs    = flag.String("conc", "1,16", "concurrent clients of the load table, one run per comma-separated `list` entry")
		duration = flag.Duration("duration", 5*time.Second, "length of each load run")
		workers  = flag.Int("workers", 4, "fake workers of the load table")
		reps     = flag.Int("reps", 3, "load runs per path, taking turns; the table shows their medians")
	)
	flag.Parse()
	log.SetFlags(0)

	st, err := streamTable(*bin, *model, *runs, *tokens)
	if err != nil {
		log.Fatal("bench/openai: streaming: ", err)
	}
	var levels []int
	for f := range strings.SplitSeq(*concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("bench/openai: -conc %q: want a list of positive numbers", *concs)
		}
		levels = append(levels, n)
	}
	rg, err := newRig(*workers)
	if err != nil {
		log.Fatal("bench/openai: load: ", err)
	}
	var lt [][]loadRow
	for _, c := range levels {
		lt = append(lt, rg.measure(c, *duration, *reps))
	}
	rg.close()

	fmt.Printf("1. streamed chat completion: %s, worker threads 1, max_tokens %d, greedy, median of %d runs\n\n", filepath.Base(*model), *tokens, *runs)
	fmt.Printf("%-36s %9s %13s %8s\n", "path", "TTFT ms", "decode tok/s", "tokens")
	for _, r := range st {
		fmt.Printf("%-36s %9.2f %13.1f %8d\n", r.name, ms(r.ttft), r.decodeTPS, r.tokens)
	}
	if len(st) == 2 {
		q, d := st[0], st[1]
		fmt.Printf("\nqueen overhead: TTFT %+.2f ms, decode tok/s ratio %.3f\n", ms(q.ttft-d.ttft), q.decodeTPS/d.decodeTPS)
	}

	fmt.Printf("\n2. non-streaming completions (4 tokens) against %d in-process fake workers, median of %d runs of %s\n\n", *workers, *reps, *duration)
	fmt.Printf("%-36s %5s %9s %9s %9s %7s\n", "path", "conc", "req/s", "p50 ms", "p99 ms", "errors")
	for _, rows := range lt {
		for _, r := range rows {
			fmt.Printf("%-36s %5d %9.0f %9.3f %9.3f %7d\n", r.name, r.conc, r.rps, ms(r.p50), ms(r.p99), r.errors)
		}
	}
	fmt.Println()
	for _, rows := range lt {
		q, d := rows[0], rows[1]
		fmt.Printf("at %d concurrent clients the queen adds: p50 %+.3f ms, p99 %+.3f ms (throughput %.0f%% of direct)\n",
			q.conc, ms(q.p50-d.p50), ms(q.p99-d.p99), 100*q.rps/d.rps)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile returns the p-th percentile (0 to 1) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p * float64(len(ds)-1))
	return ds[i]
}
