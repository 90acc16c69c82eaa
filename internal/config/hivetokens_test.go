package config

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestHiveTokens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hive-tokens")
	ts := HiveTokens{Dir: dir}
	if tok, err := ts.Get("box"); err != nil || tok != "" {
		t.Fatalf("no file: %q %v", tok, err)
	}
	tok, created, err := ts.Ensure("box")
	if err != nil || !created || len(tok) != 64 {
		t.Fatalf("ensure: %q %v %v", tok, created, err)
	}
	st, err := os.Stat(filepath.Join(dir, "box"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", st, err)
	}
	if again, created, err := ts.Ensure("box"); err != nil || created || again != tok {
		t.Fatalf("ensure again: %q %v %v", again, created, err)
	}
	if got, _ := ts.Get("box"); got != tok {
		t.Fatalf("get %q, want %q", got, tok)
	}
	// Hostile names have no token and make no file.
	for _, bad := range []string{"../x", "", "a/b", "-rf"} {
		if tok, err := ts.Get(bad); err != nil || tok != "" {
			t.Errorf("get %q: %q %v", bad, tok, err)
		}
		if _, _, err := ts.Ensure(bad); err == nil {
			t.Errorf("ensure %q made a token", bad)
		}
	}
	// A file with a blank or short token is an error, never "no token".
	os.WriteFile(filepath.Join(dir, "short"), []byte("abc\n"), 0o600)
	if _, err := ts.Get("short"); err == nil || !strings.Contains(err.Error(), "rbee hive install -a short") {
		t.Fatalf("short token: %v", err)
	}
	if err := ts.Remove("box"); err != nil {
		t.Fatal(err)
	}
	if tok, _ := ts.Get("box"); tok != "" {
		t.Fatal("removed token still read")
	}
	if err := ts.Remove("box"); err != nil {
		t.Fatalf("removing twice: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// Processes that ensure one hive's token at once (a queen and a hive
// started by hand) end up with the same one.
func TestHiveTokensEnsureRace(t *testing.T) {
	ts := HiveTokens{Dir: t.TempDir()}
	toks := make([]string, 8)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			tok, _, err := ts.Ensure("localhost")
			if err != nil {
				t.Error(err)
			}
			toks[i] = tok
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] || tok == "" {
			t.Fatalf("tokens differ: %q", toks)
		}
	}
}

func TestHiveTokensDefaultDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	p, err := HiveTokens{}.Path("localhost")
	if err != nil || p != filepath.Join(home, "rbee", "hive-tokens", "localhost") {
		t.Fatalf("%q %v", p, err)
	}
}

// A token that others may replace is no secret: the folder and the files
// are checked as config.toml is.
func TestHiveTokensOthersMayWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hive-tokens")
	ts := HiveTokens{Dir: dir}
	if _, _, err := ts.Ensure("box"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "box"), 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get("box"); err == nil || !strings.Contains(err.Error(), "chmod go-w "+filepath.Join(dir, "box")) {
		t.Fatalf("a token file others may write: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, "box"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get("box"); err == nil || !strings.Contains(err.Error(), "chmod go-w "+dir) {
		t.Fatalf("a token folder others may write: %v", err)
	}
}
