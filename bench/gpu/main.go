// Command gpu (built as rbee-gpubench by `make gpu-bundle`) is the GPU
// check of bench/gpu/run.sh: it writes the benchmark models, measures
// llama.cpp in-process and llm-worker-rbee over HTTP on a GPU and on the
// CPU, and prints the table. Each measurement is its own process, writing
// one JSON result, so that one that fails or hangs costs only its own row.
//
//	rbee-gpubench models DIR
//	rbee-gpubench devices
//	rbee-gpubench engine -model M -device cuda:0 -out R.json
//	rbee-gpubench worker -bin llm-worker-rbee -model M -device cuda:0 -out R.json
//	rbee-gpubench table RESULTS_DIR
//
// It runs where no Go toolchain is, so it is a prebuilt binary (linked to
// the system's C and C++ libraries, as the worker is: a static binary could
// not load the CUDA backend).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/testmodel"
)

// The two models of the check, written with the project's GGUF writer.
var models = []struct {
	file  string
	shape testmodel.Shape
}{
	{"qwen2-0.5b-q8_0.gguf", testmodel.Qwen2_0_5B},
	{"llama3.2-1b-q4_0.gguf", testmodel.Llama3_2_1B},
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "models":
		err = writeModels(args)
	case "devices":
		llama.WriteDevices(os.Stdout, false)
	case "engine", "worker":
		err = measureCmd(cmd, args)
	case "table":
		err = tableCmd(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rbee-gpubench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rbee-gpubench models DIR | devices | engine FLAGS | worker FLAGS | table DIR")
	os.Exit(2)
}

func writeModels(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: models DIR")
	}
	dir := args[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, m := range models {
		path := filepath.Join(dir, m.file)
		want, err := m.shape.FileSize()
		if err != nil {
			return err
		}
		if st, err := os.Stat(path); err == nil && st.Size() == want {
			fmt.Printf("%s: up to date\n", path)
			continue
		}
		start := time.Now()
		if err := testmodel.WriteRandom(path, m.shape, 1); err != nil {
			return err
		}
		fmt.Printf("%s: %d MiB in %s\n", path, want>>20, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// Result is one measurement, as written by engine and worker.
type Result struct {
	Kind       string `json:"kind"` // engine or worker
	Model      string `json:"model"`
	Device     string `json:"device"`
	Threads    int    `json:"threads"`
	GPULayers  int    `json:"gpu_layers"` // asked; -1 = all that fit
	LayersUsed int    `json:"layers_used"`

	PromptTokens int       `json:"prompt_tokens"`
	GenTokens    int       `json:"gen_tokens"`
	PromptTPS    []float64 `json:"prompt_tps"` // one per measured run
	DecodeTPS    []float64 `json:"decode_tps"`

	DeviceName      string `json:"device_name"`
	DeviceMemBytes  uint64 `json:"device_mem_bytes"`
	WeightsPerToken uint64 `json:"weights_per_token"` // bytes of weights one decoded token reads
	Exit            string `json:"exit,omitempty"`    // how the worker ended after SIGTERM
	Error           string `json:"error,omitempty"`
}

type measureFlags struct {
	bin, model, device, out string
	threads, layers, runs   int
	tokens, promptLen       int
	timeout                 time.Duration
}

func measureCmd(kind string, args []string) error {
	fs := flag.NewFlagSet(kind, flag.ContinueOnError)
	var f measureFlags
	fs.StringVar(&f.bin, "bin", "llm-worker-rbee", "worker binary (worker only)")
	fs.StringVar(&f.model, "model", "", "GGUF model")
	fs.StringVar(&f.device, "device", "cuda:0", "device")
	fs.StringVar(&f.out, "out", "", "result file (JSON)")
	fs.IntVar(&f.threads, "threads", runtime.NumCPU(), "CPU threads")
	fs.IntVar(&f.layers, "gpu-layers", -1, "layers on the GPU (-1: all that fit)")
	fs.IntVar(&f.runs, "runs", 3, "measured runs, after one warm-up")
	fs.IntVar(&f.tokens, "tokens", 128, "tokens to generate per run")
	fs.IntVar(&f.promptLen, "prompt", 512, "prompt length in characters (one token each, plus BOS)")
	timeout := 150 * time.Second
	if s, err := strconv.Atoi(os.Getenv("STEP_DEADLINE_S")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second // run.sh's time limit for this step
	}
	fs.DurationVar(&f.timeout, "timeout", timeout, "give up after this long, writing an error result (default: $STEP_DEADLINE_S seconds, else 150)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.model == "" || f.out == "" || f.runs < 1 || f.tokens < 2 || f.promptLen < 1 {
		return errors.New("-model and -out are required; -runs >= 1, -tokens >= 2, -prompt >= 1")
	}
	r := Result{Kind: kind, Model: filepath.Base(f.model), Device: f.device, Threads: f.threads, GPULayers: f.layers}
	if fl, err := gguf.Check(f.model); err == nil {
		r.WeightsPerToken = weightsPerToken(fl)
	}
	// A hung GPU call cannot be interrupted; the result still says so.
	time.AfterFunc(f.timeout, func() {
		r.Error = fmt.Sprintf("timed out after %s", f.timeout)
		_ = writeResult(f.out, r)
		fmt.Fprintln(os.Stderr, "rbee-gpubench:", r.Error)
		os.Exit(3)
	})
	var err error
	if kind == "engine" {
		err = measureEngine(f, &r)
	} else {
		err = measureWorker(f, &r)
	}
	if err != nil {
		r.Error = err.Error()
	}
	if werr := writeResult(f.out, r); werr != nil {
		return werr
	}
	printResult(r)
	return err
}

func writeResult(path string, r Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func printResult(r Result) {
	if r.Error != "" {
		fmt.Printf("%s %s on %s: FAILED: %s\n", r.Kind, r.Model, r.Device, r.Error)
		return
	}
	fmt.Printf("%s %s on %s (%s, %d layers, %d MiB): prompt %s tok/s, decode %s tok/s (runs: prompt %v, decode %v)\n",
		r.Kind, r.Model, r.Device, r.DeviceName, r.LayersUsed, r.DeviceMemBytes>>20,
		num(median(r.PromptTPS)), num(median(r.DecodeTPS)), rounded(r.PromptTPS), rounded(r.DecodeTPS))
}

// weightsPerToken is what decoding one token reads: every weight but the
// token embedding, of which it reads one row, unless the embedding is
// tied and doubles as the output matrix.
func weightsPerToken(f *gguf.File) uint64 {
	total := f.TensorBytes()
	embd, ok := f.Tensor("token_embd.weight")
	if _, hasOutput := f.Tensor("output.weight"); ok && hasOutput {
		total -= embd.Size
	}
	return total
}

// prompt is n printable characters: the random models have one token per
// character, so the prompt is exactly n tokens plus BOS.
func prompt(n int) string {
	s := strings.Repeat("The quick brown fox jumps over the lazy dog. ", n/45+1)
	return s[:n]
}

func rounded(xs []float64) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = num(x)
	}
	return out
}
