package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The queen refuses to start on a config folder that other users may write
// (they could replace keys.json or a hive's token in it), or on a keys.json
// they may write: one line naming the path and the chmod that fixes it,
// which main prints as "queen-rbee: ..." before exiting 1.
func TestRefusesConfigOthersMayWrite(t *testing.T) {
	dir := isolate(t)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	want := "refusing " + dir + ": other users may write it (mode 0777); run chmod go-w " + dir
	if err := run([]string{"--port", "0"}); err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(keys, []byte(`{"version":1,"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keys, 0o666); err != nil {
		t.Fatal(err)
	}
	err := run([]string{"--port", "0"})
	if err == nil || !strings.Contains(err.Error(), "refusing "+keys+": other users may write it") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("keys.json 0666: %v", err)
	}
}
