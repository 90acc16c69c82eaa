package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// rbee refuses a config folder that other users may write (they could put
// their own queen URL and token, or API keys, in it): one line, status 1,
// whatever the command.
func TestConfigOthersMayWrite(t *testing.T) {
	home := isolate(t)
	dir := filepath.Join(home, "config", "rbee")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	want := "rbee: refusing " + dir + ": other users may write it (mode 0777); run chmod go-w " + dir + "\n"
	for _, args := range [][]string{
		{"status"},
		{"infer", "-m", "tiny", "hi"},
		{"model", "list"},
		{"key", "list"},
		{"key", "create"},
	} {
		r := run(t, nil, nil, args...)
		if r.code != exitFailure || r.stderr != want {
			t.Errorf("%q: exit %d, stderr %q, want %q", args, r.code, r.stderr, want)
		}
	}
}
