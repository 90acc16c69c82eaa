// Package harness starts the real programs for benchmarks and provides the
// models they run on, so each benchmark measures the binaries people run.
package harness

import (
	"context"
	"errors"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/workerclient"
)

// Worker is a running llm-worker-rbee.
type Worker struct {
	*Proc
	Client *workerclient.Client
}

// StartWorker starts bin on model with extra flags and waits until it is
// ready. The worker dies with the benchmark.
func StartWorker(bin, model string, extra ...string) (*Worker, error) {
	p, url, err := Start(bin, nil, "", append([]string{"--model", model, "--port", "0"}, extra...)...)
	if err != nil {
		return nil, err
	}
	w := &Worker{Proc: p, Client: &workerclient.Client{BaseURL: url}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.Client.WaitReady(ctx); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
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
