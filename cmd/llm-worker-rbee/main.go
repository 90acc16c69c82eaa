// Command llm-worker-rbee serves one model with llama.cpp over simple HTTP.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/llama"
	"github.com/rbee/rbee/internal/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "llm-worker-rbee: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("llm-worker-rbee", flag.ContinueOnError)
	var (
		model    = fs.String("model", "", "path to the `.gguf` model file (required)")
		modelID  = fs.String("model-id", "", "model name reported to the queen (default: the file name without .gguf)")
		host     = fs.String("host", "127.0.0.1", "address to listen on")
		port     = fs.Int("port", 0, "port to listen on (0: any free port; the address is printed on stdout)")
		id       = fs.String("worker-id", "", "worker id reported to the queen (default: random)")
		hiveID   = fs.String("hive-id", "localhost", "id of the hive that owns this worker")
		queenURL = fs.String("queen-url", "", "queen to send heartbeats to (empty: none)")
		url      = fs.String("url", "", "URL the queen uses to reach this worker (default: http://HOST:PORT)")
		threads  = fs.Int("threads", 0, "CPU threads for decoding (0: all cores)")
		ctxSize  = fs.Int("ctx-size", 0, "context tokens per request (0: the model's, at most 4096)")
		slots    = fs.Int("slots", 4, "requests decoded at once, in one batch (each with its own --ctx-size)")
		queueCap = fs.Int("queue", 16, "requests that may wait for a slot before new ones get 429")
		devName  = fs.String("device", "cpu", "device to run on: cpu, cuda:N or metal:N")
		verbose  = fs.Bool("verbose", false, "log llama.cpp's informational messages too")
		layers   = fs.Int("gpu-layers", -1, "layers to put on the GPU --device (blocks, then the output layer; -1: every layer that fits)")
		cacheRAM = fs.Int64("cache-ram", llama.DefaultCacheRAM>>20, "MiB of RAM for the prompt cache's conversations beyond the slots (0: no prompt cache)")
		list     = fs.Bool("list-devices", false, "load the GPU backend libraries, list the devices --device can name, and exit")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: llm-worker-rbee --model M.gguf [--port N] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if *list {
		llama.WriteDevices(os.Stdout, *verbose)
		return nil
	}
	dev, err := device.Parse(*devName)
	switch {
	case *model == "":
		return errors.New("--model is required")
	case err != nil:
		return err
	case *layers < -1:
		return fmt.Errorf("--gpu-layers must be -1 (every layer that fits) or more, got %d", *layers)
	case *layers != -1 && !dev.IsGPU():
		return errors.New("--gpu-layers needs a GPU --device, such as cuda:0")
	case *slots < 1 || *slots > 64:
		return fmt.Errorf("--slots must be from 1 to 64, got %d", *slots)
	case *cacheRAM < 0 || *cacheRAM > 1<<30:
		return fmt.Errorf("--cache-ram must be from 0 (off) to %d MiB, got %d", 1<<30, *cacheRAM)
	case *port < 0 || *port > 65535:
		return fmt.Errorf("--port must be from 0 to 65535, got %d", *port)
	}
	if *id == "" {
		*id = randomID()
	}
	token, err := credential(*id, *hiveID, *queenURL)
	if err != nil {
		return err
	}
	if err := httpapi.CheckBind(*host, token != ""); err != nil {
		return fmt.Errorf("%v (set RBEE_WORKER_TOKEN)", err)
	}

	// Check the header in Go before llama.cpp reads a byte of the file.
	f, err := gguf.Check(*model)
	if err != nil {
		return err
	}
	if err := f.RequireWeights(); err != nil {
		return err
	}
	// A GPU that is missing, or too small for even one layer, is known
	// before listening: one line, no half-started worker.
	if dev.IsGPU() {
		if *layers, err = llama.PlaceOnGPU(f, dev, *layers, *ctxSize, *slots, *verbose); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if *url == "" {
		*url = "http://" + addr
	}
	// The hive reads this line to learn the port when it passed --port 0.
	fmt.Printf("listening http://%s\n", addr)

	if *threads <= 0 {
		*threads = runtime.NumCPU()
	}
	if *modelID == "" {
		*modelID = strings.TrimSuffix(filepath.Base(*model), ".gguf")
	}
	// 0 MiB turns the cache off; llama.Options reads 0 as its default.
	cacheBytes := *cacheRAM << 20
	if cacheBytes == 0 {
		cacheBytes = -1
	}
	w := worker.New(worker.Config{
		WorkerID:  *id,
		HiveID:    *hiveID,
		ModelName: *modelID,
		ModelSize: f.FileSize,
		URL:       *url,
		QueenURL:  *queenURL,
		Token:     token,
		Loopback:  httpapi.IsLoopback(*host),
		Slots:     *slots,
		QueueCap:  *queueCap,
		Device:    dev.String(),
		Load: func(progress func(float32)) (engine.Model, error) {
			return llama.Load(*model, llama.Options{
				Threads: *threads, CtxSize: *ctxSize, Slots: *slots, Verbose: *verbose,
				Progress: func(p float32) bool { progress(p); return true },
				Device:   dev.String(), GPULayers: *layers, CacheRAM: cacheBytes,
			})
		},
	})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	slog.Info("loading model", "model", *model, "worker", *id, "addr", addr)
	return w.Serve(ctx, ln)
}

// randomID is the id of a worker started without --worker-id: random, so
// that two workers started by hand never claim one id at the queen (which
// refuses the second while the first lives), as pids of two machines may.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "worker-" + hex.EncodeToString(b[:])
}

// credential is the secret the worker requires on its API and proves its
// heartbeats with: RBEE_WORKER_TOKEN, which a hive hands each worker it
// spawns. A worker started by hand that reports to a queen derives it,
// like its hive would, from the token of its hive on this machine
// (hive-tokens/HIVE-ID of $XDG_CONFIG_HOME/rbee), which the queen and a
// hive on this machine make; without either it could not register.
func credential(id, hiveID, queenURL string) (string, error) {
	if tok := os.Getenv("RBEE_WORKER_TOKEN"); tok != "" {
		if err := httpapi.CheckToken(tok); err != nil {
			return "", fmt.Errorf("RBEE_WORKER_TOKEN: %w", err)
		}
		return tok, nil
	}
	if queenURL == "" {
		return "", nil
	}
	ts := config.HiveTokens{}
	hiveTok, err := ts.Get(hiveID)
	if err != nil {
		return "", err
	}
	if hiveTok == "" {
		p, _ := ts.Path(hiveID)
		return "", fmt.Errorf("no credential to register with the queen as a worker of hive %s: set RBEE_WORKER_TOKEN, or run this on the queen's machine after the queen (or rbee-hive --hive-id %s) has started, which makes %s", hiveID, hiveID, p)
	}
	return httpapi.WorkerToken(hiveTok, id), nil
}
