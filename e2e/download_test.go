package e2e

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/hf/hubtest"
	"github.com/rbee/rbee/internal/wire"
)

const hubRepo = "ggml-org/models"

// startHub serves the shared models as the Hugging Face repository
// ggml-org/models, from this test process, and points the programs of e at
// it through HF_ENDPOINT.
func startHub(t *testing.T, e *env) *hubtest.Hub {
	t.Helper()
	shared := filepath.Dir(storiesModel(t))
	hub := hubtest.New()
	t.Cleanup(hub.Close)
	for _, f := range []string{"stories260K.gguf", "TinyStories-656K-Q8_0.gguf", "ggml-vocab-phi-3.gguf"} {
		must(t, hub.AddFile(hubRepo, f, filepath.Join(shared, f)))
	}
	env := e.environ[:0]
	for _, kv := range e.environ {
		if !strings.HasPrefix(kv, "HF_") {
			env = append(env, kv)
		}
	}
	e.environ = append(env, "HF_ENDPOINT="+hub.URL)
	return hub
}

// `rbee infer -m hf:...` from nothing: the CLI starts a queen, the queen the
// local hive, the hive downloads the model with progress, verifies it,
// spawns a worker on it, and the text comes out. Everything stops after.
func TestInferDownloadsFromHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hub := startHub(t, e)
	r := e.rbee("infer", "-m", "hf:"+hubRepo+":stories260K.gguf", "--max-tokens", "16", "--temperature", "0", "Once upon a time")
	if r.code != 0 || strings.TrimSpace(r.stdout) == "" {
		t.Fatalf("%s\nhive log:\n%s", r, e.log("rbee-hive.log"))
	}
	for _, want := range []string{"downloading stories260K.gguf", "[progress]", "SHA-256 verified", "Stopping queen-rbee"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	e.waitNoLeftovers()
	path := filepath.Join(e.home, "data", "rbee", "models", "hf", "ggml-org", "models", "stories260K.gguf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hub.SHA256(hubRepo, "stories260K.gguf") {
		t.Fatal("the downloaded file differs from the served one")
	}

	// The catalog kept it: a second run downloads nothing.
	r = e.mustRbee("infer", "-m", "hf:"+hubRepo+":stories260K.gguf", "--max-tokens", "4", "Once upon a time")
	if !strings.Contains(r.stderr, "in the catalog already") || hub.Stats(hubRepo, "stories260K.gguf").Requests != 1 {
		t.Errorf("second infer: %s\nhub: %+v", r, hub.Stats(hubRepo, "stories260K.gguf"))
	}
	e.waitNoLeftovers()
}

// `rbee model download hf:owner/repo` on a running queen picks the GGUF
// file by the preference, lists and deletes like any model, and bad
// references fail with one line.
func TestModelDownloadFromHub(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	startHub(t, e)
	e.mustRbee("queen", "start")
	t.Cleanup(func() {
		e.mustRbee("queen", "stop")
		e.waitNoLeftovers()
	})
	e.mustRbee("hive", "start")

	r := e.mustRbee("model", "download", "hf:"+hubRepo)
	if !strings.Contains(r.stdout, "TinyStories-656K-Q8_0.gguf") || !strings.Contains(r.stderr, "chose TinyStories-656K-Q8_0.gguf") {
		t.Errorf("model download: %s", r)
	}
	r = e.mustRbee("model", "list", "--json")
	var models []wire.ModelInfo
	if err := json.Unmarshal([]byte(r.stdout), &models); err != nil || len(models) != 1 ||
		models[0].ID != "ggml-org--models" || models[0].Quantization != "Q8_0" || len(models[0].SHA256) != 64 {
		t.Fatalf("model list: %v %s", err, r)
	}
	e.mustRbee("model", "delete", "hf:"+hubRepo)
	if _, err := os.Stat(models[0].Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("model delete left %s: %v", models[0].Path, err)
	}

	for model, says := range map[string]string{
		"hf:" + hubRepo + ":ggml-vocab-phi-3.gguf": "cannot generate text", // vocabulary only
		"hf:" + hubRepo + ":missing.gguf":          "missing.gguf",
		"hf:nobody/nothing":                        "nobody/nothing",
		"hf:../etc:passwd.gguf":                    "hugging face",
	} {
		r := e.rbee("model", "download", model)
		if r.code == 0 || !strings.Contains(r.lastErrLine(), says) {
			t.Errorf("model download %s: %s", model, r)
		}
	}
}

// A model the hub keeps in git rather than LFS (no SHA-256 on the hub) is
// verified by its git blob id and then downloaded like any other.
func TestInferDownloadsGitStoredFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hub := startHub(t, e)
	b, err := os.ReadFile(storiesModel(t))
	must(t, err)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	hub.SetFault(hubRepo, "stories260K.gguf", hubtest.Fault{GitBlob: hex.EncodeToString(h.Sum(nil))})
	r := e.rbee("infer", "-m", "hf:"+hubRepo+":stories260K.gguf", "--max-tokens", "8", "--temperature", "0", "Once upon a time")
	if r.code != 0 || !strings.HasPrefix(r.stdout, ", there was") {
		t.Fatalf("%s\nhive log:\n%s", r, e.log("rbee-hive.log"))
	}
	e.waitNoLeftovers()
}
