package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLastLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("old run: fine\nnew run\nthe reason\n\n"), 0o600)
	if got := lastLine(p, 0); got != "the reason" {
		t.Fatalf("got %q", got)
	}
	if got := lastLine(p, int64(len("old run: fine\nnew run\nthe reason\n\n"))); !strings.Contains(got, "nothing") {
		t.Fatalf("empty tail: %q", got)
	}
	if got := lastLine(filepath.Join(t.TempDir(), "missing"), 0); !strings.Contains(got, "no log") {
		t.Fatalf("missing: %q", got)
	}
}
