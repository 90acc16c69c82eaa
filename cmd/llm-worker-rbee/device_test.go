package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

// brokenBackend is a folder holding a text file named like the CUDA backend.
func brokenBackend(t *testing.T) (dir, lib string) {
	t.Helper()
	dir = t.TempDir()
	lib = filepath.Join(dir, "libggml-cuda.so")
	if err := os.WriteFile(lib, []byte(strings.Repeat("not a shared library\n", 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, lib
}

// exitsWithOneLine runs the worker and wants it to fail with exactly one
// line on stderr, holding every want, and nothing on stdout (it never
// listened).
func exitsWithOneLine(t *testing.T, env []string, args []string, want ...string) {
	t.Helper()
	cmd := workerCmd(args...)
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("%v: exited 0", args)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "llm-worker-rbee: ") {
		t.Fatalf("%v: want one line of reason, got %q", args, stderr.String())
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("%v: %q does not say %q", args, lines[0], w)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("%v: printed %q on stdout", args, stdout.String())
	}
}

func TestGPUDeviceWithoutBackend(t *testing.T) {
	model := alphabetModel(t)
	dir, lib := brokenBackend(t)
	exitsWithOneLine(t, []string{"RBEE_BACKEND_PATH=" + dir}, []string{"--model", model, "--device", "cuda:0"},
		"cuda:0", lib, "invalid ELF header")
	exitsWithOneLine(t, []string{"RBEE_BACKEND_PATH=" + t.TempDir()}, []string{"--model", model, "--device", "cuda:1"},
		"cuda:1", "no libggml-cuda.so", "make cuda")
	exitsWithOneLine(t, []string{"RBEE_BACKEND_PATH=" + dir}, []string{"--model", model, "--device", "metal:0", "--gpu-layers", "4"},
		"metal:0", "no metal backend")
}

func TestBadDeviceFlags(t *testing.T) {
	model := alphabetModel(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--device", "gpu"}, "want cpu, cuda:N or metal:N"},
		{[]string{"--device", "cuda:01"}, "index"},
		{[]string{"--device", "cuda:300"}, "index"},
		{[]string{"--device", "cuda:0", "--gpu-layers", "-2"}, "--gpu-layers"},
		{[]string{"--gpu-layers", "8"}, "needs a GPU --device"},
	} {
		exitsWithOneLine(t, nil, append([]string{"--model", model}, c.args...), c.want)
	}
}

// A broken backend library does not matter to a CPU worker: it runs as
// before, and says it runs on the CPU.
func TestCPUWorkerIgnoresBrokenBackend(t *testing.T) {
	dir, _ := brokenBackend(t)
	t.Setenv("RBEE_BACKEND_PATH", dir)
	w := startWorker(t, alphabetModel(t), "--device", "cpu")
	text, _, end := w.generate(t, wire.InferenceRequest{Prompt: "abc", MaxTokens: ptr(5), Temperature: ptr(0.0)})
	if text != "defgh" || end.Type != wire.TypeEnd {
		t.Fatalf("generated %q, %+v", text, end)
	}
	r, err := w.client.Ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r.Device != "cpu" || r.GPUUse != (wire.GPUUse{}) {
		t.Fatalf("ready %+v", r)
	}
	w.stop(t) // its stderr is complete, and no longer written to
	if strings.Contains(w.stderr.String(), "libggml") {
		t.Errorf("a CPU worker looked at the backend libraries: %s", w.stderr.String())
	}
}

func TestListDevices(t *testing.T) {
	dir, lib := brokenBackend(t)
	cmd := workerCmd("--list-devices")
	cmd.Env = append(cmd.Env, "RBEE_BACKEND_PATH="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "backend library not loaded: "+lib) || !strings.Contains(s, "invalid ELF header") {
		t.Errorf("the broken library is not reported: %q", s)
	}
	var cpu bool
	for _, line := range strings.Split(s, "\n") {
		cpu = cpu || (strings.HasPrefix(line, "cpu ") && strings.Contains(line, "MiB free"))
	}
	if !cpu {
		t.Errorf("no cpu device line in %q", s)
	}
}

// A backend library brings its own ggml base library, with its own logger.
// The worker points that logger at its own before loading the backend, so
// that the backend's chatter is filtered like llama.cpp's: warnings show,
// information does not (unless --verbose).
func TestBackendLogsAreFiltered(t *testing.T) {
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler to build test libraries: %v", err)
	}
	dir := t.TempDir()
	build := func(name, src string, flags ...string) {
		t.Helper()
		c := filepath.Join(t.TempDir(), "x.c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"-shared", "-fPIC", "-o", filepath.Join(dir, name), c}, flags...)
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
		}
	}
	// A stand-in for libggml-base: ggml's logger and nothing else.
	build("libggml-base.so.0", `#include <stdio.h>
typedef void (*log_cb)(int level, const char *text, void *user);
static log_cb cb; static void *ud;
void ggml_log_set(log_cb c, void *u) { cb = c; ud = u; }
void base_log(int level, const char *text) { if (cb) cb(level, text, ud); else fputs(text, stderr); }
`, "-Wl,-soname,libggml-base.so.0")
	build("libggml-chatty.so", `void base_log(int level, const char *text);
void *ggml_backend_init(void) {
	base_log(2, "chatty: information nobody asked for\n");
	base_log(3, "chatty: a warning worth reading\n");
	return 0;
}
`, "-L"+dir, "-l:libggml-base.so.0", "-Wl,-rpath,$ORIGIN")

	for _, verbose := range []bool{false, true} {
		args := []string{"--list-devices"}
		if verbose {
			args = append(args, "--verbose")
		}
		cmd := workerCmd(args...)
		cmd.Env = append(cmd.Env, "RBEE_BACKEND_PATH="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s%s", err, out, stderr.String())
		}
		if !strings.Contains(stderr.String(), "chatty: a warning worth reading") {
			t.Errorf("verbose=%v: the warning is lost: %q", verbose, stderr.String())
		}
		if strings.Contains(stderr.String(), "chatty: information") != verbose {
			t.Errorf("verbose=%v: stderr %q", verbose, stderr.String())
		}
		if !strings.Contains(string(out), "libggml-chatty.so: ggml could not initialize it") {
			t.Errorf("the failed backend is not reported: %q", out)
		}
	}
}
