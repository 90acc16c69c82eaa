package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

// A token nobody can send (a space, a short one) is refused with a line
// naming the variable; without one, a hive started by hand takes the token
// of its id from this machine's config directory, where the queen finds it.
func TestHiveToken(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	for _, bad := range []string{" ", "short", "sixteen chars ok"} {
		t.Setenv("RBEE_HIVE_TOKEN", bad)
		if _, err := hiveToken("localhost"); err == nil || !strings.HasPrefix(err.Error(), "RBEE_HIVE_TOKEN: ") {
			t.Errorf("RBEE_HIVE_TOKEN=%q: %v", bad, err)
		}
	}
	t.Setenv("RBEE_HIVE_TOKEN", "a-good-token-of-some-length")
	if tok, err := hiveToken("localhost"); err != nil || tok != "a-good-token-of-some-length" {
		t.Fatalf("%q %v", tok, err)
	}
	t.Setenv("RBEE_HIVE_TOKEN", "")
	tok, err := hiveToken("gpu-box")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(home, "rbee", "hive-tokens", "gpu-box"))
	if err != nil || strings.TrimSpace(string(b)) != tok {
		t.Fatalf("token file %q %v, hive uses %q", b, err, tok)
	}
	if again, _ := hiveToken("gpu-box"); again != tok {
		t.Fatal("a second start made another token")
	}
	if _, err := hiveToken("../x"); err == nil || !strings.Contains(err.Error(), "--hive-id") {
		t.Fatalf("bad id: %v", err)
	}
}
