package hive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/hf"
	"github.com/rbee/rbee/internal/hf/hubtest"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

const (
	hubRepo     = "ggml-org/models"
	storiesFile = "stories260K.gguf"
	storiesRef  = "hf:" + hubRepo + ":" + storiesFile
	storiesID   = "ggml-org--models--stories260K"
)

// hubHive is a hive served in-process whose Hugging Face hub is a fake one
// serving the shared models as ggml-org/models.
type hubHive struct {
	*testHive
	hive *Hive
	hub  *hubtest.Hub
}

func startHubHive(t *testing.T) *hubHive {
	t.Helper()
	shared, err := filepath.Abs("../../../shared/models")
	if err == nil {
		_, err = os.Stat(filepath.Join(shared, storiesFile))
	}
	if err != nil {
		t.Skip("the shared models are not in ../shared/models")
	}
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	for _, f := range []string{storiesFile, "TinyStories-656K-Q8_0.gguf", "ggml-vocab-gpt-2.gguf"} {
		if err := hub.AddFile(hubRepo, f, filepath.Join(shared, f)); err != nil {
			t.Fatal(err)
		}
	}
	client, err := hf.New(hub.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, ln, dir := testConfig(t)
	cfg.HF = client
	sh := serveHive(t, cfg, ln, dir)
	return &hubHive{testHive: sh.testHive, hive: sh.hive, hub: hub}
}

func downloadOp(model string) wire.Operation {
	return wire.Operation{Operation: wire.OpModelDownload, Model: model}
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func narrated(evs []wire.Event, text string) bool {
	for _, e := range evs {
		if e.Type == wire.TypeNarration && strings.Contains(e.Human, text) {
			return true
		}
	}
	return false
}

func TestHFDownload(t *testing.T) {
	h := startHubHive(t)
	evs, term, err := h.run(t, downloadOp(storiesRef))
	if err != nil {
		t.Fatal(err)
	}
	var info wire.ModelInfo
	if err := json.Unmarshal(term.Data, &info); err != nil {
		t.Fatal(err)
	}
	want := h.hub.SHA256(hubRepo, storiesFile)
	if info.ID != storiesID || info.Source != storiesRef || info.File != storiesFile || info.SHA256 != want ||
		info.Path != filepath.Join(h.cfg.DataDir, "models", "hf", "ggml-org", "models", storiesFile) ||
		info.Architecture != "llama" || info.ContextLength != 2048 || info.MemoryBytes == 0 {
		t.Fatalf("downloaded %+v", info)
	}
	if fileSHA(t, info.Path) != want {
		t.Fatal("the file in the catalog is not the served one")
	}
	var last wire.Event
	for _, e := range evs {
		if e.Type == wire.TypeProgress {
			last = e
		}
	}
	if last.Unit != "bytes" || last.Done != info.SizeBytes || last.Total != info.SizeBytes {
		t.Errorf("last progress %+v", last)
	}
	if !narrated(evs, "SHA-256 verified") {
		t.Errorf("no verification narrated: %+v", evs)
	}

	// The reference names the entry; a second download fetches nothing.
	if got := result[wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelGet, Model: storiesRef}); got.ID != storiesID {
		t.Fatalf("model_get = %+v", got)
	}
	evs, _, err = h.run(t, downloadOp(storiesRef))
	if err != nil || !narrated(evs, "in the catalog already") || h.hub.Stats(hubRepo, storiesFile).Requests != 1 {
		t.Fatalf("second download: %v %+v %+v", err, evs, h.hub.Stats(hubRepo, storiesFile))
	}

	// No file named: the preference picks the Q8_0 file; the vocabulary
	// file and the F32 one are passed over.
	chosen := result[wire.ModelInfo](t, h.testHive, downloadOp("hf:"+hubRepo))
	if chosen.ID != "ggml-org--models" || chosen.File != "TinyStories-656K-Q8_0.gguf" || chosen.Quantization != "Q8_0" ||
		chosen.Source != "hf:"+hubRepo+":TinyStories-656K-Q8_0.gguf" {
		t.Fatalf("chosen %+v", chosen)
	}
	if models := result[[]wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelList}); len(models) != 2 {
		t.Fatalf("model_list = %+v", models)
	}

	// Delete removes the downloaded file; spawning the reference then
	// downloads it again first.
	result[wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelDelete, Model: storiesRef})
	if _, err := os.Stat(info.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("model_delete left the downloaded file: %v", err)
	}
	evs, term, err = h.run(t, spawnOp(storiesRef))
	if err != nil {
		t.Fatal(err)
	}
	var w wire.WorkerInfo
	if err := json.Unmarshal(term.Data, &w); err != nil || w.Model != storiesID || w.State != wire.StateReady {
		t.Fatalf("spawned %+v, %v", w, err)
	}
	if !narrated(evs, "downloading "+storiesFile) || h.hub.Stats(hubRepo, storiesFile).Requests != 2 {
		t.Fatalf("spawn did not download first: %+v", evs)
	}
	result[wire.WorkerInfo](t, h.testHive, workerOp(wire.OpWorkerStop, w.WorkerID))
}

// Each bad answer of the hub is a clear error with its own code, and
// leaves neither a catalog entry nor a file in the catalog.
func TestHFDownloadFailures(t *testing.T) {
	h := startHubHive(t)
	h.hub.Add("evil/traversal", "m.gguf", []byte("x"))
	h.hub.SetListing("evil/traversal", []string{"m.gguf", "../../../.ssh/authorized_keys"})
	h.hub.Add("evil/absolute", "m.gguf", []byte("x"))
	h.hub.SetListing("evil/absolute", []string{"/etc/cron.d/x.gguf"})
	h.hub.Add("odd/name", "my model.gguf", []byte("x"))
	h.hub.Add("two/files", "x.gguf", []byte("x"))
	h.hub.Add("two/files", "y.gguf", []byte("y"))
	h.hub.Add("no/gguf", "README.md", []byte("y"))
	h.hub.Add("bad/digest", "m.gguf", []byte("x"))
	h.hub.SetFault("bad/digest", "m.gguf", hubtest.Fault{Digest: `"../../../../etc/passwd"`})
	h.hub.Add("bad/redirect", "m.gguf", []byte("x"))
	h.hub.SetFault("bad/redirect", "m.gguf", hubtest.Fault{Redirect: "http://example.com/m.gguf"})
	h.hub.Add("not/model", "m.gguf", []byte("GGUF this is not"))
	h.hub.Add("gone/midway", "m.gguf", []byte("x"))
	h.hub.SetFault("gone/midway", "m.gguf", hubtest.Fault{Status: []int{404, 404}})
	result[[]wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelList})
	h.hub.SetFault(hubRepo, storiesFile, hubtest.Fault{WrongBytes: true})

	for _, tc := range []struct {
		model, code, says string
	}{
		{"hf:evil/traversal", wire.CodeHubRefused, "authorized_keys"},
		{"hf:evil/absolute", wire.CodeHubRefused, "absolute"},
		{"hf:odd/name", wire.CodeHubRefused, "my model.gguf"},
		{"hf:two/files", wire.CodeNoChoice, "x.gguf, y.gguf"},
		{"hf:no/gguf", wire.CodeNoChoice, "no .gguf"},
		{"hf:nobody/nothing", wire.CodeNotFound, "nobody/nothing"},
		{"hf:two/files:z.gguf", wire.CodeNotFound, "z.gguf"},
		{"hf:bad/digest:m.gguf", wire.CodeHubRefused, "SHA-256"},
		{"hf:bad/redirect:m.gguf", wire.CodeHubRefused, "not https"},
		{"hf:not/model:m.gguf", wire.CodeBadModel, "m.gguf"},
		{"hf:gone/midway:m.gguf", wire.CodeNotFound, "404"},
		{storiesRef, wire.CodeChecksum, "SHA-256"},
	} {
		for _, op := range []wire.Operation{downloadOp(tc.model), spawnOp(tc.model)} {
			re := failure(t, h.testHive, op)
			if re.Code != tc.code || !strings.Contains(re.Message, tc.says) {
				t.Errorf("%s %s: %s %q; want %s saying %q", op.Operation, tc.model, re.Code, re.Message, tc.code, tc.says)
			}
		}
	}
	if models := result[[]wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelList}); len(models) != 0 {
		t.Fatalf("failed downloads left entries: %+v", models)
	}
	// Directories may stay; no file does.
	_ = filepath.WalkDir(filepath.Join(h.cfg.DataDir, "models"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("a failed download left %s", p)
		}
		return nil
	})
}

// A download in progress holds up neither other jobs nor /health; a second
// job for the same file joins the transfer; a cancelled download resumes.
func TestHFDownloadConcurrency(t *testing.T) {
	h := startHubHive(t)
	gate := make(chan struct{})
	half := int64(500_000)
	h.hub.SetFault(hubRepo, storiesFile, hubtest.Fault{Gate: gate, GateAfter: half})

	type out struct {
		evs  []wire.Event
		term wire.Event
		err  error
	}
	jobsDone := make(chan out, 2)
	runAsync := func() {
		go func() {
			evs, term, err := h.run(t, downloadOp(storiesRef))
			jobsDone <- out{evs, term, err}
		}()
	}
	runAsync()
	h.waitWaiters(t, 1)

	// The hive is all there while the transfer hangs.
	result[[]wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelList})
	result[[]wire.WorkerInfo](t, h.testHive, wire.Operation{Operation: wire.OpWorkerList})
	var health wire.HiveHealth
	getJSON(t, h.url+"/health", &health)
	if health.Status != "ok" {
		t.Fatalf("health %+v", health)
	}

	runAsync()
	h.waitWaiters(t, 2)
	close(gate)
	shared := 0
	for range 2 {
		o := <-jobsDone
		if o.err != nil {
			t.Fatal(o.err)
		}
		if narrated(o.evs, "another job started") {
			shared++
		}
	}
	if st := h.hub.Stats(hubRepo, storiesFile); shared != 1 || st.Requests != 1 {
		t.Fatalf("%d jobs shared, hub served %+v", shared, st)
	}

	// Cancel a download half way; the next one fetches only the rest.
	result[wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelDelete, Model: storiesRef})
	gate2 := make(chan struct{})
	defer close(gate2)
	h.hub.SetFault(hubRepo, storiesFile, hubtest.Fault{Gate: gate2, GateAfter: half})
	jc, err := h.client.Submit(context.Background(), downloadOp(storiesRef))
	if err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(h.cfg.DataDir, "models", "hf", "ggml-org", "models", storiesFile+".partial")
	testkit.WaitFor(t, "the first half to arrive", func() bool {
		st, err := os.Stat(partial)
		return err == nil && st.Size() == half
	})
	if err := h.client.Cancel(context.Background(), jc.JobID); err != nil {
		t.Fatal(err)
	}
	h.waitWaiters(t, 0)
	h.hub.SetFault(hubRepo, storiesFile, hubtest.Fault{})
	evs, _, err := h.run(t, downloadOp(storiesRef))
	if err != nil {
		t.Fatal(err)
	}
	size := h.hub.Stats(hubRepo, storiesFile)
	if !narrated(evs, "resuming") || size.Ranges != 1 || size.BodyBytes != 1_185_376-half {
		t.Fatalf("resume: hub %+v, events %+v", size, evs)
	}
}

// waitWaiters waits until the hive's one transfer has n waiting jobs (or,
// for 0, until no transfer runs).
func (h *hubHive) waitWaiters(t *testing.T, n int) {
	t.Helper()
	testkit.WaitFor(t, fmt.Sprintf("%d jobs waiting for the transfer", n), func() bool {
		tr := h.hive.hub.dl.Transfers()
		return n == 0 && len(tr) == 0 || len(tr) == 1 && tr[0].Waiters == n
	})
}

// A file imported under the id an hf: reference maps to is neither taken
// for that reference nor replaced by its download.
func TestHFIDTakenByImport(t *testing.T) {
	h := startHubHive(t)
	if err := os.MkdirAll(h.models, 0o700); err != nil {
		t.Fatal(err)
	}
	path := h.model(t, storiesID)
	result[wire.ModelInfo](t, h.testHive, downloadOp(path))
	for _, op := range []wire.Operation{downloadOp(storiesRef), spawnOp(storiesRef)} {
		if re := failure(t, h.testHive, op); re.Code != wire.CodeModelExists || !strings.Contains(re.Message, path) {
			t.Errorf("%s: %+v", op.Operation, re)
		}
	}
	if got := result[wire.ModelInfo](t, h.testHive, wire.Operation{Operation: wire.OpModelGet, Model: storiesID}); got.Path != path {
		t.Fatalf("the imported entry changed: %+v", got)
	}
	if st := h.hub.Stats(hubRepo, storiesFile); st.Requests != 0 {
		t.Fatalf("downloaded anyway: %+v", st)
	}
}
