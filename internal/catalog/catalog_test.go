package catalog

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/dirhash"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testkit"

	"github.com/rbee/rbee/internal/testmodel"
)

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) { os.Exit(testkit.CheckLeaks(m)) }

func alphabet(t *testing.T, dir, name string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := testmodel.WriteAlphabet(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t *testing.T, dir string) *Catalog {
	t.Helper()
	c, err := Open(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	model := alphabet(t, filepath.Join(tmp, "user"), "alpha.gguf")
	dir := filepath.Join(tmp, "models")
	c := open(t, dir)

	info, err := c.Import(model)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "alpha" || info.Path != model || info.Source != SourceFile ||
		info.Architecture != "llama" || info.Parameters == 0 || info.SizeBytes != testmodel.AlphabetFileSize() ||
		info.AddedAt.IsZero() || !info.LastUsedAt.IsZero() {
		t.Fatalf("imported %+v", info)
	}
	got, err := c.Get("alpha")
	if err != nil || got != info {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, info)
	}
	if l := c.List(); len(l) != 1 || l[0] != info {
		t.Fatalf("List = %+v", l)
	}
	if err := c.Touch("alpha"); err != nil {
		t.Fatal(err)
	}
	touched, _ := c.Get("alpha")
	if touched.LastUsedAt.IsZero() {
		t.Fatal("Touch did not set last_used_at")
	}
	again, err := c.Import(model)
	if err != nil || again.AddedAt != info.AddedAt || again.LastUsedAt != touched.LastUsedAt {
		t.Fatalf("re-import = %+v, %v", again, err)
	}

	// A restart reads the same entry back.
	c2 := open(t, dir)
	if got, err := c2.Get("alpha"); err != nil || got != touched {
		t.Fatalf("after restart: %+v, %v; want %+v", got, err, touched)
	}

	deleted, err := c.Delete("alpha")
	if err != nil || deleted.ID != "alpha" {
		t.Fatalf("Delete = %+v, %v", deleted, err)
	}
	if _, err := os.Stat(model); err != nil {
		t.Fatalf("Delete removed the user's file: %v", err)
	}
	if _, err := c.Get("alpha"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := c.Delete("alpha"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if len(open(t, dir).List()) != 0 {
		t.Fatal("the deleted entry came back after a restart")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("catalog directory not empty: %v", names)
	}
}

func TestImportRejects(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "models")
	c := open(t, dir)
	notGGUF := filepath.Join(tmp, "notes.gguf")
	if err := os.WriteFile(notGGUF, []byte("just text, not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(tmp, "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "dir.gguf"), 0o700); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]error{
		notGGUF:                           ErrBadFile,
		empty:                             ErrBadFile,
		filepath.Join(tmp, "gone.gguf"):   ErrBadFile,
		filepath.Join(tmp, "dir.gguf"):    ErrBadFile,
		"relative.gguf":                   ErrNotPath,
		"catalog-id":                      ErrNotPath,
		"hf:owner/repo:x.gguf":            ErrNotPath,
		"/etc/passwd":                     nil, // not a .gguf path: a parse error
		"../../etc/passwd.gguf":           ErrNotPath,
		"/x/\x00.gguf":                    nil,
		`C:\models\x.gguf`:                nil,
		"/x/" + strings.Repeat("a", 5000): nil,
	} {
		_, err := c.Import(path)
		if err == nil || want != nil && !errors.Is(err, want) {
			t.Errorf("Import(%.60q) = %v, want %v", path, err, want)
		}
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("rejected imports left files: %v", names)
	}
}

// A named pipe named like a model used to block Import (and with it the
// hive's job, and its stopping) forever; every special file is refused at
// once, as gguf.ErrNotRegular inside ErrBadFile, and nothing is recorded.
func TestImportRefusesSpecialFiles(t *testing.T) {
	tmp := t.TempDir()
	c := open(t, filepath.Join(tmp, "models"))
	for kind, path := range testkit.SpecialFiles(t, tmp) {
		done := make(chan error, 1)
		go func() {
			_, err := c.Import(path)
			done <- err
		}()
		err := testkit.Receive(t, "the import of a "+kind, done)
		if !errors.Is(err, ErrBadFile) || !errors.Is(err, gguf.ErrNotRegular) || !strings.Contains(err.Error(), path+" is a "+kind) {
			t.Errorf("%s: %v", kind, err)
		}
	}
	if l := c.List(); len(l) != 0 {
		t.Fatalf("special files recorded: %+v", l)
	}
}

func TestImportConflict(t *testing.T) {
	tmp := t.TempDir()
	a := alphabet(t, filepath.Join(tmp, "a"), "m.gguf")
	b := alphabet(t, filepath.Join(tmp, "b"), "m.gguf")
	c := open(t, filepath.Join(tmp, "models"))
	if _, err := c.Import(a); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Import(b); !errors.Is(err, ErrExists) {
		t.Fatalf("second file with the same id: %v", err)
	}
	// Once the first file is gone, its id is free for the other.
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	info, err := c.Import(b)
	if err != nil || info.Path != b {
		t.Fatalf("import after the first file went: %+v, %v", info, err)
	}
}

func TestCorruptEntriesSkipped(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "models")
	good := alphabet(t, filepath.Join(tmp, "user"), "good.gguf")
	c := open(t, dir)
	if _, err := c.Import(good); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("truncated.json", `{"version":1,"model":{"id":"trunc`)
	write("other.json", `{"version":1,"model":{"id":"good","path":"/x.gguf"}}`)
	write("relative.json", `{"version":1,"model":{"id":"relative","path":"x.gguf"}}`)
	write("future.json", `{"version":99,"model":{"id":"future","path":"/x.gguf"}}`)
	write("bad..id.json", `{"version":1,"model":{"id":"bad..id","path":"/x.gguf"}}`)
	write("README", "not an entry")
	// What a crash between create and rename leaves.
	write(".good.json.tmp-0123456789ab", `{"version":1,"mod`)
	if err := os.Symlink(filepath.Join(dir, "good.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}

	c2 := open(t, dir)
	l := c2.List()
	if len(l) != 1 || l[0].ID != "good" {
		t.Fatalf("List = %+v, want only good", l)
	}
	names := dirNames(t, dir)
	if slices.Contains(names, ".good.json.tmp-0123456789ab") {
		t.Error("the leftover temporary file was not removed")
	}
	if !slices.Contains(names, "truncated.json") {
		t.Error("a corrupt entry was deleted; it should stay for a person to look at")
	}
}

func TestHostileIDs(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "models")
	c := open(t, dir)
	// A file the traversals would reach, if any got through.
	victim := filepath.Join(tmp, "victim.json")
	if err := os.WriteFile(victim, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	before := treeHash(t, tmp)
	for _, id := range []string{
		"../victim", "../../etc/passwd", "..%2f..%2fvictim", "/etc/passwd", `C:\x`, `\\host\share\x`,
		"a/../../victim", "a\x00b", strings.Repeat("x", 4096), "model.", "model ", "", ".", "..",
	} {
		if _, err := c.Get(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Get(%.40q) = %v", id, err)
		}
		if _, err := c.Delete(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Delete(%.40q) = %v", id, err)
		}
		if err := c.Touch(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Touch(%.40q) = %v", id, err)
		}
	}
	if treeHash(t, tmp) != before {
		t.Fatal("hostile ids changed the filesystem")
	}
}

func TestConcurrent(t *testing.T) {
	tmp := t.TempDir()
	c := open(t, filepath.Join(tmp, "models"))
	var paths []string
	for _, n := range []string{"a", "b", "c", "d"} {
		paths = append(paths, alphabet(t, filepath.Join(tmp, "user"), n+".gguf"))
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			p := paths[i%len(paths)]
			id := strings.TrimSuffix(filepath.Base(p), ".gguf")
			if _, err := c.Import(p); err != nil {
				t.Error(err)
			}
			if err := c.Touch(id); err != nil {
				t.Error(err)
			}
			_ = c.List()
		})
	}
	wg.Wait()
	if got := open(t, c.Dir()).List(); len(got) != 4 {
		t.Fatalf("after a restart: %d entries, want 4", len(got))
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func treeHash(t *testing.T, dir string) string {
	t.Helper()
	sum, err := dirhash.Sum(dir)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}
