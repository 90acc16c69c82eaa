package dirhash

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSum(t *testing.T) {
	dir := t.TempDir()
	a, err := Sum(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("1"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := Sum(dir)
	os.WriteFile(filepath.Join(dir, "x"), []byte("2"), 0o600)
	c, _ := Sum(dir)
	if a == b || b == c {
		t.Fatalf("changes not seen: %s %s %s", a, b, c)
	}
}
