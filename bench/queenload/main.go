// Command queenload measures queen-rbee under load and prints two tables:
//
//  1. -streams concurrent streams (1,000 by default) through the real
//     queen-rbee process to in-process fake workers that stream like
//     llm-worker-rbee and heartbeat like it: every stream is held open after
//     its first token until all have theirs, so all are open at once. For
//     each path: errors, time to first token at p50 and p99 and what the
//     queen adds to it (against the same streams opened straight at the fake
//     workers, as the queen opens them), and the queen's memory per open
//     stream (the growth of its VmRSS from before the streams to when all
//     are open, over their number). Each queen path gets a fresh queen, so
//     one path's memory does not count for the next. Then the same streams
//     one at a time, for what the queen adds to a single request.
//  2. -beats simulated workers (1,000) heartbeating every 2 s from
//     goroutines of this process, each over its own kept-alive connection:
//     the share of one core the queen spends on them (utime + stime from
//     /proc/PID/stat over -window, 20 s), against the same queen idle.
//
// Everything runs on loopback in a temporary HOME, in about a minute. On a
// small machine the load generator, the fake workers and the queen share
// the cores, so latency figures include waiting for a core.
//
//	make build && go run ./bench/queenload [-bin bin] [-streams 1000] [-workers 8] [-slots 128] [-tokens 16] [-sequential 200] [-beats 1000] [-window 20s]
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/rbee/bench/harness"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit/fakeworker"
	"github.com/rbee/rbee/internal/wire"
)

func main() {
	var (
		bin      = flag.String("bin", "bin", "directory of queen-rbee (make build)")
		streams  = flag.Int("streams", 1000, "concurrent streams of the streams table")
		nworkers = flag.Int("workers", 8, "fake workers serving the streams")
		slots    = flag.Int("slots", 128, "slots of each fake worker (workers x slots must hold every stream)")
		tokens   = flag.Int("tokens", 16, "tokens of each stream")
		seq      = flag.Int("sequential", 200, "streams opened one at a time, for the latency of one request")
		beats    = flag.Int("beats", 1000, "simulated workers of the heartbeat table")
		every    = flag.Duration("every", 2*time.Second, "heartbeat interval of the simulated workers (the worker's)")
		window   = flag.Duration("window", 20*time.Second, "CPU measuring window of the heartbeat table")
	)
	flag.Parse()
	log.SetFlags(0)
	if *nworkers**slots < *streams {
		log.Fatalf("bench/queenload: %d workers x %d slots cannot hold %d streams at once", *nworkers, *slots, *streams)
	}
	limit, err := raiseOpenFiles()
	if err != nil {
		log.Fatal("bench/queenload: RLIMIT_NOFILE: ", err)
	}
	queenBin, err := filepath.Abs(filepath.Join(*bin, "queen-rbee"))
	if err != nil {
		log.Fatal(err)
	}
	started := time.Now()

	var workers []*fakeworker.Worker
	for i := range *nworkers {
		w, err := startFakeWorker("fake-"+strconv.Itoa(i), *slots, *tokens)
		if err != nil {
			log.Fatal("bench/queenload: ", err)
		}
		defer w.Close()
		workers = append(workers, w)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * *streams, MaxIdleConns: 4 * *streams}}

	// Straight at the fake workers: what the queen's latency is held against.
	const directName = "fake workers direct (as the queen calls them)"
	warm(workers, direct(client, workers, *tokens))
	rows := []streamRow{runStreams(directName, *streams, workers, 0, direct(client, workers, *tokens))}
	singles := []streamRow{oneAtATime(directName, *seq, workers, direct(client, workers, *tokens))}
	var queenLimit string
	for _, p := range []struct {
		name string
		fn   func(queenURL string) openFn
	}{
		{"queen /v1/chat/completions (stream)", func(u string) openFn { return viaOpenAI(client, u, *tokens) }},
		{"queen job protocol infer", func(u string) openFn { return viaJobs(client, u, *tokens) }},
	} {
		lim, err := withQueen(queenBin, workers, func(q *harness.Proc, queenURL, _ string) {
			warm(workers, p.fn(queenURL))
			rows = append(rows, runStreams(p.name, *streams, workers, q.PID(), p.fn(queenURL)))
			warm(workers, p.fn(queenURL))
			singles = append(singles, oneAtATime(p.name, *seq, workers, p.fn(queenURL)))
		})
		if err != nil {
			log.Fatal("bench/queenload: ", err)
		}
		queenLimit = lim
	}

	var beat beatRow
	_, err = withQueen(queenBin, nil, func(q *harness.Proc, queenURL, hiveToken string) {
		var berr error
		beat, berr = heartbeatLoad(queenURL, hiveToken, q.PID(), *beats, *every, 5*time.Second, *window)
		if berr != nil {
			log.Print("bench/queenload: heartbeats: ", berr)
		}
	})
	if err != nil {
		log.Fatal("bench/queenload: ", err)
	}

	fmt.Printf("1. %d concurrent streams, all open at once, through queen-rbee (a real process) to %d in-process fake workers\n", *streams, *nworkers)
	fmt.Printf("   (%d slots each, %d tokens per stream), loopback; open files: this process %d, the queen %s\n\n", *slots, *tokens, limit, queenLimit)
	fmt.Printf("%-46s %7s %6s %9s %9s %9s %9s %10s %10s %9s\n", "path", "streams", "errors", "TTFT p50", "TTFT p99", "added p50", "added p99", "RSS before", "RSS open", "per stream")
	d := rows[0]
	dp50, dp99 := percentile(d.ttft, 0.5), percentile(d.ttft, 0.99)
	for i, r := range rows {
		p50, p99 := percentile(r.ttft, 0.5), percentile(r.ttft, 0.99)
		added50, added99, before, open, per := "-", "-", "-", "-", "-"
		if i > 0 {
			added50, added99 = fmt.Sprintf("%+.1f ms", ms(p50-dp50)), fmt.Sprintf("%+.1f ms", ms(p99-dp99))
			before, open = mib(r.rssBase), mib(r.rssPeak)
			per = fmt.Sprintf("%.1f KiB", float64(r.rssPeak-r.rssBase)/1024/float64(r.streams))
		}
		fmt.Printf("%-46s %7d %6d %6.1f ms %6.1f ms %9s %9s %10s %10s %9s\n", r.name, r.streams, r.errors, ms(p50), ms(p99), added50, added99, before, open, per)
	}
	fmt.Printf("\n   the same, one stream at a time (%d in a row): what the queen adds to one request\n\n", *seq)
	fmt.Printf("%-46s %7s %6s %9s %9s %9s %9s\n", "path", "streams", "errors", "TTFT p50", "TTFT p99", "added p50", "added p99")
	sp50, sp99 := percentile(singles[0].ttft, 0.5), percentile(singles[0].ttft, 0.99)
	for i, r := range singles {
		p50, p99 := percentile(r.ttft, 0.5), percentile(r.ttft, 0.99)
		added50, added99 := "-", "-"
		if i > 0 {
			added50, added99 = fmt.Sprintf("%+.2f ms", ms(p50-sp50)), fmt.Sprintf("%+.2f ms", ms(p99-sp99))
		}
		fmt.Printf("%-46s %7d %6d %6.2f ms %6.2f ms %9s %9s\n", r.name, r.streams, r.errors, ms(p50), ms(p99), added50, added99)
	}
	for _, r := range slices.Concat(rows, singles) {
		if r.firstErr != nil {
			fmt.Printf("  %s: first error: %v\n", r.name, r.firstErr)
		}
		if !r.allOpen {
			fmt.Printf("  %s: not every stream was open at once\n", r.name)
		}
	}
	fmt.Printf("\n2. %d simulated workers heartbeating every %s to a fresh queen-rbee, CPU over %s\n\n", beat.workers, beat.every, beat.window)
	fmt.Printf("%-34s %12s\n", "queen CPU idle ("+beat.idleMeasure.String()+")", fmt.Sprintf("%.2f%% of a core", 100*beat.idleCPU))
	fmt.Printf("%-34s %12s\n", "queen CPU with the heartbeats", fmt.Sprintf("%.2f%% of a core", 100*beat.beatCPU))
	fmt.Printf("%-34s %12.0f\n", "heartbeats taken per second", beat.rate)
	fmt.Printf("%-34s %12s\n", "heartbeat round trip p50 / p99", fmt.Sprintf("%.2f / %.2f ms", ms(beat.p50), ms(beat.p99)))
	fmt.Printf("%-34s %12d\n", "failed heartbeats", beat.errors)
	fmt.Printf("%-34s %12d\n", "workers ready at the queen", beat.registered)
	fmt.Printf("%-34s %12s\n", "queen RSS idle / with workers", mib(beat.rssIdle)+" / "+mib(beat.rssWith))
	if beat.firstErr != "" {
		fmt.Printf("  first heartbeat error: %s\n", beat.firstErr)
	}
	fmt.Printf("\n(%s in all)\n", time.Since(started).Round(time.Second))
}

// withQueen runs fn against a fresh queen-rbee that the fake workers
// heartbeat to, and reports the queen's open-files limit. The workers are
// of hive "bench", whose token (also fn's) the queen reads from its config
// directory, and prove their heartbeats with their credentials derived
// from it, as workers spawned by a hive do.
func withQueen(queenBin string, workers []*fakeworker.Worker, fn func(q *harness.Proc, queenURL, hiveToken string)) (string, error) {
	home, err := os.MkdirTemp("", "rbee-bench-queenload-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	if err := harness.IsolateHive(home); err != nil {
		return "", err
	}
	hiveToken, _, err := config.HiveTokens{Dir: filepath.Join(home, "config", "rbee", "hive-tokens")}.Ensure("bench")
	if err != nil {
		return "", err
	}
	q, queenURL, err := harness.Start(queenBin, harness.IsolatedEnv(home), filepath.Join(home, "queen-rbee.log"), "--port", "0")
	if err != nil {
		return "", err
	}
	defer q.Stop()
	for _, w := range workers {
		// Every 2 s, as llm-worker-rbee, and at once when its load changes.
		defer w.StartHeartbeats(&jobs.Client{BaseURL: queenURL, Token: httpapi.WorkerToken(hiveToken, w.ID)}, 2*time.Second)()
	}
	if len(workers) > 0 {
		deadline := time.Now().Add(10 * time.Second)
		for countReady(queenURL, "bench") != len(workers) {
			if time.Now().After(deadline) {
				return "", fmt.Errorf("the fake workers did not register with the queen")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fn(q, queenURL, hiveToken)
	return openFilesLimit(q.PID()), nil
}

// oneAtATime opens n streams one after the other.
func oneAtATime(name string, n int, workers []*fakeworker.Worker, fn openFn) streamRow {
	out := streamRow{name: name, allOpen: true}
	for range n {
		r := runStreams(name, 1, workers, 0, fn)
		out.streams++
		out.errors += r.errors
		out.ttft = append(out.ttft, r.ttft...)
		if out.firstErr == nil {
			out.firstErr = r.firstErr
		}
	}
	return out
}

// warm runs a tenth of the streams first, so that connections and the
// goroutines' stacks exist before anything is measured, then waits until
// the fake workers are idle again.
func warm(workers []*fakeworker.Worker, fn openFn) {
	_ = runStreams("warm-up", 100, workers, 0, fn)
	for {
		busy := 0
		for _, w := range workers {
			busy += w.Active()
		}
		if busy == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The last heartbeats reach the queen.
	time.Sleep(200 * time.Millisecond)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// percentile returns the p-th percentile (0 to 1) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// startFakeWorker starts a fake worker like llm-worker-rbee with slots
// slots, whose streams say "t0 t1 ..." in tokens pieces and end at
// max_tokens.
func startFakeWorker(id string, slots, tokens int) (*fakeworker.Worker, error) {
	pieces := make([]string, tokens)
	for i := range pieces {
		pieces[i] = " t" + strconv.Itoa(i)
	}
	if tokens > 0 {
		pieces[0] = "t0"
	}
	w, err := fakeworker.New(fakeworker.Config{ID: id, HiveID: "bench", Model: "fake", Slots: slots, Tokens: pieces})
	if err != nil {
		return nil, err
	}
	w.SetEnd(wire.NewEnd(wire.StopMaxTokens, 2, tokens, wire.Timings{}))
	return w, nil
}
