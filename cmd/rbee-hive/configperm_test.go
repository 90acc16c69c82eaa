package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A hive started by hand reads its token from the config folder, and
// refuses one that other users may write (they could swap the token): one
// line naming the folder and the chmod that fixes it.
func TestRefusesConfigOthersMayWrite(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	t.Setenv("RBEE_HIVE_TOKEN", "")
	dir := filepath.Join(home, "rbee")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	want := "the token of hive localhost: refusing " + dir + ": other users may write it (mode 0777); run chmod go-w " + dir + " (or set RBEE_HIVE_TOKEN)"
	if _, err := hiveToken("localhost"); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}
