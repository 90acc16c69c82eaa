package catalog

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/gguf"
)

// stories copies the shared stories260K model to the download location of
// hf:owner/repo:stories260K.gguf in the catalog directory.
func stories(t *testing.T, c *Catalog) (name string, size int64) {
	t.Helper()
	src, err := os.Open("../../../shared/models/stories260K.gguf")
	if err != nil {
		t.Skip("stories260K.gguf is not in ../shared/models")
	}
	defer src.Close()
	name = HFName("owner", "repo", "stories260K.gguf")
	dst := filepath.Join(c.Dir(), filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := io.Copy(f, src)
	if err != nil {
		t.Fatal(err)
	}
	return name, n
}

const storiesSHA = "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"

func TestAddDownload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	c := open(t, dir)
	name, size := stories(t, c)
	d := Download{ID: "owner--repo--stories260K", Source: "hf:owner/repo:stories260K.gguf", Name: name, File: "stories260K.gguf", SHA256: storiesSHA}
	info, err := c.AddDownload(d)
	if err != nil {
		t.Fatal(err)
	}
	// What the shared models' README says of the file.
	if info.ID != d.ID || info.Source != d.Source || info.File != d.File || info.SHA256 != storiesSHA ||
		info.Path != filepath.Join(dir, "hf", "owner", "repo", "stories260K.gguf") || info.SizeBytes != size ||
		info.Architecture != "llama" || info.Parameters != 292_800 || info.Quantization != "F32" ||
		info.ContextLength != 2048 || info.HasChatTemplate || info.AddedAt.IsZero() {
		t.Fatalf("added %+v", info)
	}
	// 5 layers x 2048 tokens x 4 KV heads x (8+8) x 2 bytes, and
	// 512 x (512 tokens + 4 x 64) x 4 bytes of scratch.
	if want := uint64(292_800*4) + 5*2048*4*16*2 + 512*(512+4*64)*4; info.MemoryBytes != want {
		t.Errorf("memory estimate %d, want %d", info.MemoryBytes, want)
	}
	if got, ok := c.Present(d.ID); !ok || got != info {
		t.Fatalf("Present = %+v, %v", got, ok)
	}

	// It survives a restart, owned.
	c.Close()
	c = open(t, dir)
	if got, err := c.Get(d.ID); err != nil || got != info {
		t.Fatalf("after reopening: %+v, %v", got, err)
	}

	// A second id for the same file (the repository named without the
	// file): deleting one entry keeps the file for the other.
	d2 := d
	d2.ID, d2.Source = "owner--repo", "hf:owner/repo"
	if _, err := c.AddDownload(d2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.Path); err != nil {
		t.Fatalf("the file another entry names was deleted: %v", err)
	}
	if _, err := c.Delete(d2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.Path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the owned file outlived its last entry: %v", err)
	}
	if _, ok := c.Present(d.ID); ok {
		t.Fatal("deleted entry is present")
	}
}

// A file that was truncated or replaced after it was recorded is not
// present: the hive downloads it again.
func TestPresentChecksTheFile(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "models"))
	name, _ := stories(t, c)
	info, err := c.AddDownload(Download{ID: "m", Source: "hf:o/r:m.gguf", Name: name, File: "m.gguf", SHA256: storiesSHA})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(info.Path, 100); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Present("m"); ok {
		t.Fatal("a truncated file counts as present")
	}
}

func TestAddDownloadRefusals(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "models"))
	bad := filepath.Join(c.Dir(), "hf", "o", "r", "bad.gguf")
	if err := os.MkdirAll(filepath.Dir(bad), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("GGUF but not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.AddDownload(Download{ID: "bad", Name: HFName("o", "r", "bad.gguf"), File: "bad.gguf", SHA256: storiesSHA})
	if !errors.Is(err, ErrBadFile) {
		t.Fatalf("bad file: %v", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a downloaded file that is not a model stays: %v", err)
	}
	for _, d := range []Download{
		{ID: "../x", Name: "hf/o/r/x.gguf"},
		{ID: "x", Name: "../x.gguf"},
		{ID: "x", Name: "/etc/passwd"},
		{ID: "x", Name: ""},
		{ID: strings.Repeat("x", 200), Name: "hf/o/r/x.gguf"},
	} {
		if _, err := c.AddDownload(d); !errors.Is(err, ErrInvalidID) {
			t.Errorf("%+v: %v", d, err)
		}
	}
	if len(c.List()) != 0 {
		t.Fatalf("entries %+v", c.List())
	}

	// An id that names an imported file that still exists is taken.
	model := alphabet(t, t.TempDir(), "taken.gguf")
	if _, err := c.Import(model); err != nil {
		t.Fatal(err)
	}
	name, _ := stories(t, c)
	if _, err := c.AddDownload(Download{ID: "taken", Name: name, File: "stories260K.gguf", SHA256: storiesSHA}); !errors.Is(err, ErrExists) {
		t.Fatalf("taken id: %v", err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir(), name)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a download refused for its id stays: %v", err)
	}
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("the imported file is gone: %v", err)
	}
}

// Imported models get the same header facts and estimate.
func TestImportEstimates(t *testing.T) {
	c := open(t, filepath.Join(t.TempDir(), "models"))
	model := alphabet(t, t.TempDir(), "alpha.gguf")
	info, err := c.Import(model)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(model)
	if err != nil {
		t.Fatal(err)
	}
	if info.File != "alpha.gguf" || info.MemoryBytes != EstimateMemory(f) || info.MemoryBytes <= f.TensorBytes() || info.SHA256 != "" {
		t.Fatalf("imported %+v", info)
	}
}
