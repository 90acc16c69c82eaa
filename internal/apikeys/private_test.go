package apikeys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keys.json in a folder that other users may write could be replaced by
// any of them, whatever its own mode: the store refuses such a folder, with
// or without the file, in the checker (the queen) and in the CLI's
// commands, with the chmod that fixes it; and a file others may write is
// refused by the same check (config.CheckPrivate).
func TestFolderOthersMayWrite(t *testing.T) {
	for _, withFile := range []bool{false, true} {
		s := newStore(t)
		dir := filepath.Dir(s.Path())
		if withFile {
			if _, _, err := s.Create("a"); err != nil {
				t.Fatal(err)
			}
		} else if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		want := "refusing " + dir + ": other users may write it (mode 0777); run chmod go-w " + dir
		if _, err := NewChecker(s).Count(); err == nil || err.Error() != want {
			t.Errorf("file %v: checker: %v", withFile, err)
		}
		if _, err := s.List(); err == nil || err.Error() != want {
			t.Errorf("file %v: list: %v", withFile, err)
		}
		if _, _, err := s.Create("x"); err == nil || err.Error() != want {
			t.Errorf("file %v: create: %v", withFile, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := NewChecker(s).Count(); err != nil {
			t.Errorf("file %v, folder 0755: %v", withFile, err)
		}
	}

	s := newStore(t)
	if _, _, err := s.Create("a"); err != nil {
		t.Fatal(err)
	}
	c := NewChecker(s)
	if _, err := c.Count(); err != nil {
		t.Fatal(err)
	}
	// A folder opened to others after the checker read the file: the next
	// replacement of the file is refused.
	dir := filepath.Dir(s.Path())
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(dir, "forged")
	if err := os.WriteFile(forged, []byte(`{"version":1,"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(forged, s.Path()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Count(); err == nil || !strings.HasPrefix(err.Error(), "refusing "+dir) {
		t.Errorf("replaced keys.json in an open folder: %v", err)
	}
	if err := os.Chmod(s.Path(), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Count(); err == nil || err.Error() != "refusing "+s.Path()+": other users may write it (mode 0666); run chmod go-w "+s.Path() {
		t.Errorf("keys.json 0666: %v", err)
	}
}
