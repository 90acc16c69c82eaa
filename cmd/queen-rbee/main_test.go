package main

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/testkit"
)

func isolate(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	return filepath.Join(dir, "config", "rbee")
}

func TestFlagsAndBind(t *testing.T) {
	isolate(t)
	if err := run([]string{"--help"}); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, args := range [][]string{
		{"--host", "0.0.0.0", "--port", "0"},
		{"--port", "70000"},
		{"--worker-timeout", "0s"},
		{"extra"},
		{"--nope"},
	} {
		if err := run(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if err := run([]string{"--host", "0.0.0.0", "--port", "0"}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("non-loopback without a token: %v", err)
	}
}

func TestURLs(t *testing.T) {
	for _, c := range []struct{ host, public, local string }{
		{"127.0.0.1", "http://127.0.0.1:7833", "http://127.0.0.1:7833"},
		{"localhost", "http://localhost:7833", "http://127.0.0.1:7833"},
		{"0.0.0.0", "http://127.0.0.1:7833", "http://127.0.0.1:7833"},
		{"::", "http://127.0.0.1:7833", "http://127.0.0.1:7833"},
		{"10.0.0.5", "http://10.0.0.5:7833", "http://10.0.0.5:7833"},
		{"::1", "http://[::1]:7833", "http://127.0.0.1:7833"},
	} {
		pub, loc := urls(c.host, 7833)
		if pub != c.public || loc != c.local {
			t.Errorf("%s: %s %s", c.host, pub, loc)
		}
	}
}

// The daemon prints its address, serves, and exits cleanly on
// POST /v1/shutdown.
func TestServeAndShutdown(t *testing.T) {
	isolate(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	t.Cleanup(func() { os.Stdout = stdout })
	done := make(chan error, 1)
	go func() { done <- run([]string{"--port", "0"}) }()
	line, err := bufio.NewReader(r).ReadString('\n')
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	resp, err := http.Get(url + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Post(url+"/v1/shutdown", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("shutdown: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the queen did not stop")
	}
}

// An API key is enough to listen beyond loopback; a key store that cannot
// be trusted stops the queen from starting at all.
func TestBindWithAPIKey(t *testing.T) {
	dir := isolate(t)
	store := apikeys.Open(filepath.Join(dir, apikeys.FileName))
	if _, _, err := store.Create("test"); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	t.Cleanup(func() { os.Stdout = stdout })
	done := make(chan error, 1)
	go func() { done <- run([]string{"--host", "0.0.0.0", "--port", "0"}) }()
	line, err := bufio.NewReader(r).ReadString('\n')
	os.Stdout = stdout
	if err != nil {
		t.Fatalf("the queen did not start: %v", err)
	}
	url, _ := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API request without a key: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	resp, err = http.Post(url+"/v1/shutdown", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("shutdown from this machine: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the queen did not stop")
	}

	if err := os.Chmod(store.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"--port", "0"}); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("world-writable keys.json: %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }
