package hive

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/dirhash"
	"github.com/rbee/rbee/internal/testkit"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// submit posts an operation and returns the HTTP error, if any.
func (h *testHive) submit(t *testing.T, op wire.Operation) *wire.Error {
	t.Helper()
	_, err := h.client.Submit(context.Background(), op)
	if err == nil {
		return nil
	}
	var re *wire.Error
	if !errors.As(err, &re) {
		t.Fatalf("%s: %v", op.Operation, err)
	}
	return re
}

func TestRejectedOperations(t *testing.T) {
	h := startHive(t)
	for _, tc := range []struct {
		op   wire.Operation
		want string // in the message
	}{
		{wire.Operation{Operation: wire.OpInfer, Model: "alpha", InferenceRequest: wire.InferenceRequest{Prompt: "hi"}}, "inference goes from the queen straight to a worker"},
		{wire.Operation{Operation: "frobnicate"}, "unknown operation"},
		{wire.Operation{Operation: wire.OpHiveStart, Alias: "localhost"}, "unknown operation"},
		{wire.Operation{}, "operation is missing"},
		{wire.Operation{Operation: wire.OpWorkerSpawn}, "needs a model"},
		{wire.Operation{Operation: wire.OpWorkerSpawn, Model: "alpha", Device: "tpu:0"}, "device"},
		{wire.Operation{Operation: wire.OpWorkerSpawn, Model: "alpha", Device: "cpu; rm -rf /"}, "device"},
		{wire.Operation{Operation: wire.OpWorkerGet}, "worker_id"},
		{wire.Operation{Operation: wire.OpWorkerStop, WorkerID: "../x"}, "worker_id"},
		{wire.Operation{Operation: wire.OpModelGet}, "needs a model"},
		{wire.Operation{Operation: wire.OpModelList, HiveID: "bad hive"}, "hive_id"},
	} {
		re := h.submit(t, tc.op)
		if re == nil || re.Status != http.StatusBadRequest || !strings.Contains(re.Message, tc.want) {
			t.Errorf("%+v: got %v, want 400 saying %q", tc.op, re, tc.want)
		}
	}
	// A body with a field no operation has is malformed, not ignored.
	resp, err := http.Post(h.url+"/v1/jobs", "application/json", strings.NewReader(`{"operation":"worker_list","bogus":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown field: %s", resp.Status)
	}
}

// Hostile model references are refused before anything touches the
// filesystem, and nothing appears anywhere under the hive's directories.
func TestHostileModels(t *testing.T) {
	h := startHive(t)
	victim := filepath.Join(h.dir, "victim.json")
	if err := os.WriteFile(victim, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Let the hive finish creating its directories before the snapshot.
	result[[]wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelList})
	before := treeHash(t, h.dir)
	for _, model := range []string{
		"../../etc/passwd", "..%2f..%2fetc", "a/../../b", "/etc/passwd", `C:\x`, `\\host\share\x`,
		"a\x00b", strings.Repeat("x", 4096), "model.", "model ", "../victim", "./x.gguf", "~/x.gguf",
		"hf:../x", "hf:owner/repo:../../x.gguf", "hf:owner/repo:/abs.gguf",
	} {
		for _, op := range []string{wire.OpWorkerSpawn, wire.OpModelDownload, wire.OpModelGet, wire.OpModelDelete} {
			re := h.submit(t, wire.Operation{Operation: op, Model: model})
			if re == nil || re.Status != http.StatusBadRequest {
				t.Errorf("%s %.40q: got %v, want 400", op, model, re)
			}
		}
	}
	// Absolute paths that are not models get as far as the GGUF check.
	for _, model := range []string{"/etc/passwd.gguf", "/dev/zero.gguf", filepath.Join(h.dir, "victim.json.gguf"), "/proc/self/environ.gguf"} {
		if re := failure(t, h, spawnOp(model)); re.Code != wire.CodeBadModel {
			t.Errorf("spawn %s: %+v, want %s", model, re, wire.CodeBadModel)
		}
		if re := failure(t, h, wire.Operation{Operation: wire.OpModelDownload, Model: model}); re.Code != wire.CodeBadModel {
			t.Errorf("download %s: %+v", model, re)
		}
	}
	if treeHash(t, h.dir) != before {
		t.Fatal("hostile model names changed files under the hive's directories")
	}
}

func TestToken(t *testing.T) {
	h := startHive(t, func(c *Config) { c.Token = "s3cret" })
	resp, err := http.Get(h.url + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/health without a token: %s", resp.Status)
	}
	for _, token := range []string{"", "wrong", "s3cret2", "S3CRET"} {
		c := jobs.Client{BaseURL: h.url, Token: token}
		_, err := c.Submit(context.Background(), wire.Operation{Operation: wire.OpWorkerList})
		var re *wire.Error
		if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
			t.Errorf("token %q: %v, want 401", token, err)
		}
	}
	// The scheme is case-insensitive (RFC 9110), and a refusal says what is
	// missing.
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/capabilities", nil)
	req.Header.Set("Authorization", "bearer   s3cret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	var caps wire.HiveCapabilities
	err = (&jobs.Client{BaseURL: h.url}).Get(context.Background(), "/v1/capabilities", &caps)
	if re, ok := wire.AsError(err); !ok || re.Code != wire.CodeUnauthorized || !strings.Contains(re.Message, "RBEE_HIVE_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	for _, path := range []string{"/v1/capabilities", "/v1/jobs/x/stream"} {
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a token: %s", path, resp.Status)
		}
	}
	resp, err = http.Post(h.url+"/v1/shutdown", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("shutdown without a token: %s", resp.Status)
	}
	if list := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(list) != 0 {
		t.Fatalf("worker_list = %+v", list)
	}
}

func TestNonLoopbackNeedsToken(t *testing.T) {
	dir := t.TempDir()
	h, err := New(Config{DataDir: dir, LogDir: dir, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	err = h.Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "without a token") {
		t.Fatalf("Serve on 0.0.0.0 without a token: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("the refused listener is still open")
	}
}

func TestForeignHostHeader(t *testing.T) {
	h := startHive(t)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/health", nil)
	req.Host = "evil.example:7835"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: %s", resp.Status)
	}
}

func TestHealthAndCapabilities(t *testing.T) {
	h := startHive(t)
	var health wire.HiveHealth
	getJSON(t, h.url+"/health", &health)
	if health.Status != "ok" || health.HiveID != "test-hive" {
		t.Fatalf("/health = %+v", health)
	}
	raw := getJSON(t, h.url+"/v1/capabilities", nil)
	if !strings.Contains(raw, `"gpus":[]`) {
		t.Errorf("capabilities %s: want \"gpus\":[]", raw)
	}
	var caps wire.HiveCapabilities
	if err := json.Unmarshal([]byte(raw), &caps); err != nil {
		t.Fatal(err)
	}
	if caps.HiveID != "test-hive" || caps.CPUCores < 1 || caps.OS != runtime.GOOS || caps.Arch != runtime.GOARCH {
		t.Fatalf("capabilities = %+v", caps)
	}
	if runtime.GOOS == "linux" && (caps.RAMTotalBytes == 0 || caps.RAMFreeBytes == 0 || caps.RAMFreeBytes > caps.RAMTotalBytes) {
		t.Fatalf("capabilities RAM = %d free of %d", caps.RAMFreeBytes, caps.RAMTotalBytes)
	}
	resp, err := http.Get(h.url + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/nope: %s", resp.Status)
	}
}

func getJSON(t *testing.T, url string, v any) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	return string(b)
}

func TestParseMemInfo(t *testing.T) {
	total, free := parseMemInfo([]byte("MemTotal:       16384 kB\nMemFree:  1 kB\nMemAvailable:    8192 kB\nbogus\nSwapTotal: x kB\n"))
	if total != 16384<<10 || free != 8192<<10 {
		t.Fatalf("parseMemInfo = %d, %d", total, free)
	}
	if total, free := parseMemInfo(nil); total != 0 || free != 0 {
		t.Fatal("empty meminfo")
	}
}

func TestParseListening(t *testing.T) {
	for line, want := range map[string]string{
		"listening http://127.0.0.1:4000":  "http://127.0.0.1:4000",
		"listening http://127.0.0.1:4000/": "http://127.0.0.1:4000",
		"listening http://[::1]:80":        "http://[::1]:80",
	} {
		if got, err := parseListening(line); err != nil || got != want {
			t.Errorf("parseListening(%q) = %q, %v", line, got, err)
		}
	}
	for _, line := range []string{
		"", "hello", "listening", "listening http://10.0.0.1:4000", "listening http://example.com:80",
		"listening https://127.0.0.1:4000", "listening http://127.0.0.1", "listening http://127.0.0.1:0",
		"listening http://127.0.0.1:99999", "listening http://u:p@127.0.0.1:4000", "listening http://127.0.0.1:4000/x",
		"listening http://127.0.0.1:4000?q", "listening 127.0.0.1:4000",
	} {
		if got, err := parseListening(line); err == nil {
			t.Errorf("parseListening(%q) = %q, want an error", line, got)
		}
	}
}

func TestFirstLineAndTail(t *testing.T) {
	var log strings.Builder
	f := newFirstLine(&log)
	for _, p := range []string{"listen", "ing http://127.0.0.1:1\r\nmore\n", "and more\n"} {
		if n, err := f.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatal(n, err)
		}
	}
	if got := <-f.lines; got != "listening http://127.0.0.1:1" {
		t.Errorf("first line %q", got)
	}
	if log.String() != "listening http://127.0.0.1:1\r\nmore\nand more\n" {
		t.Errorf("log %q", log.String())
	}
	long := newFirstLine(io.Discard)
	long.Write([]byte(strings.Repeat("x", 3*maxFirstLine)))
	if got := <-long.lines; len(got) != maxFirstLine {
		t.Errorf("an endless first line gave %d bytes", len(got))
	}

	tl := newTail(16)
	tl.Write([]byte("first line\nsecond line that is long\n\n  "))
	if got := tl.lastLine(); got != "that is long" {
		t.Errorf("lastLine = %q", got)
	}
	if got := newTail(10).said(); !strings.Contains(got, "nothing") {
		t.Errorf("said = %q", got)
	}
}

// The real worker, when it has been built (make build), spawned through
// the hive on the alphabet model, gets ready, and generates.
func TestRealWorker(t *testing.T) {
	bin, err := filepath.Abs("../../bin/llm-worker-rbee")
	if err != nil {
		t.Fatal(err)
	}
	if !isExecutable(bin) {
		t.Skip("no ../../bin/llm-worker-rbee; run make build")
	}
	h := startHive(t, func(c *Config) {
		c.WorkerBinary = bin
		c.QueenURL = ""
		c.StopGrace = 10 * time.Second
	})
	info := result[wire.WorkerInfo](t, h, spawnOp(h.model(t, "alphabet")))
	if info.State != wire.StateReady {
		t.Fatalf("spawned %+v", info)
	}
	text := generate(t, info.URL, "abc")
	if text != "defghijklmnopqrstuvwxyz" {
		t.Errorf("generated %q", text)
	}
	result[wire.WorkerInfo](t, h, workerOp(wire.OpWorkerStop, info.WorkerID))
	waitGone(t, info.PID)
}

func treeHash(t *testing.T, dir string) string {
	t.Helper()
	sum, err := dirhash.Sum(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func generate(t *testing.T, url, prompt string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Patience)
	defer cancel()
	temp, maxTokens := 0.0, 64
	var out strings.Builder
	c := workerclient.Client{BaseURL: url}
	end, err := c.Generate(ctx, wire.InferenceRequest{Prompt: prompt, Temperature: &temp, MaxTokens: &maxTokens}, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			out.WriteString(e.T)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if end.StopReason != wire.StopEOS {
		t.Errorf("stop reason %q, want eos", end.StopReason)
	}
	return out.String()
}
