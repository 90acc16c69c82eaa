package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

// binDir holds the four programs under test (and the worker wrapper).
var binDir string

// TestMain builds the programs once, the way the Makefile does: the worker
// with the same CGO flags, so the cached llama.cpp build is reused instead of
// recompiled for minutes. RBEE_BIN_DIR (absolute, or relative to the module
// root) uses programs built elsewhere, e.g. RBEE_BIN_DIR=bin after make build.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if dir := os.Getenv("RBEE_BIN_DIR"); dir != "" {
		// Relative to the module root, where `make build` puts bin/.
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir)
		}
		abs, err := filepath.Abs(dir)
		if err == nil {
			_, err = os.Stat(filepath.Join(abs, "rbee"))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: RBEE_BIN_DIR:", err)
			return 1
		}
		binDir = abs
		return testkit.CheckLeaks(m)
	}
	dir, err := os.MkdirTemp("", "rbee-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		return 1
	}
	binDir = dir
	return testkit.CheckLeaks(m)
}

func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	pure := exec.Command(goBin, "build", "-o", dir+"/", "./cmd/rbee", "./cmd/queen-rbee", "./cmd/rbee-hive")
	pure.Env = append(os.Environ(), "CGO_ENABLED=0")
	worker := exec.Command(goBin, "build", "-o", filepath.Join(dir, "llm-worker-rbee.real"), "./cmd/llm-worker-rbee")
	worker.Env = append(os.Environ(), "CGO_CFLAGS=-O3 -march=native", "CGO_CXXFLAGS=-O3 -march=native")
	for _, c := range []*exec.Cmd{pure, worker} {
		c.Dir = ".."
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", c.Args, err, out)
		}
	}
	// The hive runs the llm-worker-rbee beside it. This one is the real
	// worker with one decoding thread, so that tests running side by side
	// on a small machine do not fight over its cores.
	wrapper := "#!/bin/sh\nexec \"$(dirname \"$0\")/llm-worker-rbee.real\" \"$@\" --threads 1\n"
	return os.WriteFile(filepath.Join(dir, "llm-worker-rbee"), []byte(wrapper), 0o755)
}
