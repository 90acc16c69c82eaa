// Command e2e measures what the orchestration costs on top of a worker: on
// one warm worker (stories260K, one thread) it times the same greedy request
// made three ways, and prints one table:
//
//   - `rbee infer` as a process, through the queen (what a person runs):
//     time to first token from process start to the first byte on stdout,
//     decode speed from the arrival of stdout bytes;
//   - the queen's job stream read directly with jobs.Client (the queen's
//     share without the CLI's process start);
//   - the worker's own HTTP API with workerclient (no orchestration).
//
// It also times `rbee status` against the running queen, and a cold
// `rbee infer` (nothing running: it starts a queen, the local hive and a
// worker) to its first token.
//
//	make build && go run ./bench/e2e [-bin bin] [-model M.gguf] [-runs 10] [-tokens 64]
//
// Everything runs in a temporary HOME on free ports.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/supervise"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

const prompt = "Once upon a time"

func main() {
	var (
		bin    = flag.String("bin", "bin", "directory of the four programs (make build)")
		model  = flag.String("model", "../shared/models/stories260K.gguf", "GGUF model")
		runs   = flag.Int("runs", 10, "measured runs of each request path (after one warm-up)")
		tokens = flag.Int("tokens", 64, "tokens to generate per request")
		cold   = flag.Int("cold", 3, "cold `rbee infer` runs")
		status = flag.Int("status", 20, "`rbee status` runs")
	)
	flag.Parse()
	log.SetFlags(0)
	if err := run(*bin, *model, *runs, *tokens, *cold, *status); err != nil {
		log.Fatal("bench/e2e: ", err)
	}
}

func run(bin, model string, runs, tokens, coldRuns, statusRuns int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	for _, p := range []string{"rbee", "queen-rbee", "rbee-hive", "llm-worker-rbee"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return fmt.Errorf("%s: run `make build` first", err)
		}
	}
	if model, err = filepath.Abs(model); err != nil {
		return err
	}
	if _, err := os.Stat(model); err != nil {
		return err
	}
	modelID := strings.TrimSuffix(filepath.Base(model), ".gguf")

	w, err := newWorld(bin)
	if err != nil {
		return err
	}
	defer w.close()
	queen, err := w.startQueen()
	if err != nil {
		return err
	}
	defer queen.Stop()
	worker, workerURL, err := w.startWorker(model, modelID)
	if err != nil {
		return err
	}
	defer worker.Stop()
	if err := w.waitQueenKnows(modelID); err != nil {
		return err
	}

	ctx := context.Background()
	maxTok := tokens
	temp := 0.0
	op := wire.Operation{Operation: wire.OpInfer, Model: modelID, InferenceRequest: wire.InferenceRequest{Prompt: prompt, MaxTokens: &maxTok, Temperature: &temp}}
	wc := &workerclient.Client{BaseURL: workerURL}
	paths := []struct {
		name    string
		measure func() (sample, error)
	}{
		{"rbee infer (process, via queen)", func() (sample, error) {
			return w.measureCLI("infer", "-m", modelID, "--max-tokens", fmt.Sprint(tokens), "--temperature", "0", prompt)
		}},
		{"queen job stream (jobs.Client)", func() (sample, error) { return w.measureQueen(ctx, op) }},
		{"worker direct (workerclient)", func() (sample, error) { return measureWorker(ctx, wc, op.InferenceRequest) }},
	}
	samples := make([][]sample, len(paths))
	for i := -1; i < runs; i++ { // run -1 warms up
		for p, path := range paths {
			s, err := path.measure()
			if err != nil {
				return fmt.Errorf("%s: %w", path.name, err)
			}
			if i >= 0 {
				samples[p] = append(samples[p], s)
			}
		}
	}

	statusTimes, err := w.timeStatus(statusRuns)
	if err != nil {
		return err
	}
	queen.Stop()
	worker.Stop()

	coldTimes, err := measureCold(bin, model, tokens, coldRuns)
	if err != nil {
		return err
	}

	fmt.Printf("rbee end to end: %s, worker threads 1, %d tokens, greedy, median of %d runs\n\n", filepath.Base(model), tokens, runs)
	fmt.Printf("%-34s %10s %14s\n", "path", "TTFT ms", "decode tok/s")
	med := make([]sample, len(paths))
	for p, path := range paths {
		med[p] = median(samples[p])
		fmt.Printf("%-34s %10.2f %14.1f\n", path.name, ms(med[p].ttft), med[p].decodeTPS)
	}
	cli, q, direct := med[0], med[1], med[2]
	fmt.Printf("\nqueen overhead (job stream - worker):   TTFT %+.2f ms, decode ratio %.3f\n", ms(q.ttft-direct.ttft), q.decodeTPS/direct.decodeTPS)
	fmt.Printf("rbee infer overhead (process - worker): TTFT %+.2f ms, decode ratio %.3f\n", ms(cli.ttft-direct.ttft), cli.decodeTPS/direct.decodeTPS)
	fmt.Printf("rbee status wall time (queen running, median of %d): %.2f ms\n", statusRuns, ms(medianDur(statusTimes)))
	fmt.Printf("cold rbee infer to first token on stdout (nothing running, median of %d): %.0f ms\n", coldRuns, ms(medianDur(coldTimes)))
	return nil
}

// measureCold times `rbee infer` with nothing running, in a fresh world
// each time, from process start to the first byte of text.
func measureCold(bin, model string, tokens, n int) ([]time.Duration, error) {
	var times []time.Duration
	for range n {
		w, err := newWorld(bin)
		if err != nil {
			return nil, err
		}
		s, err := w.measureCLI("infer", "-m", model, "--max-tokens", fmt.Sprint(tokens), "--temperature", "0", prompt)
		w.close()
		if err != nil {
			return nil, fmt.Errorf("cold rbee infer: %w", err)
		}
		times = append(times, s.ttft)
	}
	return times, nil
}

// startWorker starts a worker by hand, with one thread, heartbeating to the
// queen as if its hive had started it.
func (w *world) startWorker(model, modelID string) (*supervise.Process, string, error) {
	f, err := os.Create(filepath.Join(w.home, "worker.log"))
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	p, err := supervise.Start(supervise.Spec{
		Path: filepath.Join(w.bin, "llm-worker-rbee"),
		Args: []string{"--model", model, "--model-id", modelID, "--port", "0", "--threads", "1",
			"--worker-id", "worker-bench", "--hive-id", "localhost", "--queen-url", w.queenURL},
		Env: w.env, Stdout: pw, Stderr: f,
	})
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, "", err
	}
	rd := bufio.NewReader(pr)
	line, err := rd.ReadString('\n')
	go func() { // the worker's stdout stays drained until it exits
		_, _ = io.Copy(io.Discard, rd)
		pr.Close()
	}()
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.Stop()
		return nil, "", fmt.Errorf("worker did not say where it listens (%q, %v); see %s", line, err, f.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := (&workerclient.Client{BaseURL: u}).WaitReady(ctx); err != nil {
		p.Stop()
		return nil, "", err
	}
	return p, u, nil
}

var errNoText = errors.New("no text came")
