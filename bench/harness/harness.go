// Package harness starts the real programs for benchmarks and provides the
// models they run on, so each benchmark measures the binaries people run.
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/workerclient"
)

// Worker is a running llm-worker-rbee.
type Worker struct {
	cmd    *exec.Cmd
	Client *workerclient.Client
}

// StartWorker starts bin on model with extra flags and waits until it is
// ready. The worker dies with the benchmark.
func StartWorker(bin, model string, extra ...string) (*Worker, error) {
	args := append([]string{"--model", model, "--port", "0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w (run make build first)", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("worker did not say where it listens: %v", err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("unexpected first line from the worker: %q", line)
	}
	w := &Worker{cmd: cmd, Client: &workerclient.Client{BaseURL: url}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.Client.WaitReady(ctx); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// Stop stops the worker: SIGTERM, then SIGKILL after 10 s.
func (w *Worker) Stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- w.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
		<-done
	}
}

// CachedModel returns the path of a random-weight model of shape, written
// once into the user's cache directory.
func CachedModel(shape testmodel.Shape) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "rbee", "bench", shape.Name+"-random.gguf")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		log.Printf("writing a random-weight %s model to %s (once)", shape.Name, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := testmodel.WriteRandom(path, shape, 1); err != nil {
			log.Fatal(err)
		}
	}
	return path
}
