package llama

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The copied headers must be the ones of the llama.cpp that is compiled:
// a struct laid out differently would corrupt memory silently.
func TestHeadersMatchModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	for name, rel := range map[string]string{
		"llama.h":        "llama/llama.cpp/include",
		"ggml.h":         "ml/backend/ggml/ggml/include",
		"ggml-cpu.h":     "ml/backend/ggml/ggml/include",
		"ggml-backend.h": "ml/backend/ggml/ggml/include",
		"ggml-opt.h":     "ml/backend/ggml/ggml/include",
		"ggml-alloc.h":   "ml/backend/ggml/ggml/include",
	} {
		want, err := os.ReadFile(filepath.Join(dir, rel, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("include", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("include/%s differs from the module's %s/%s: refresh it (include/README.md)", name, rel, name)
		}
	}
}
