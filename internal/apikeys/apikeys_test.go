package apikeys

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	return Open(filepath.Join(t.TempDir(), "rbee", FileName))
}

func TestCreateListRevoke(t *testing.T) {
	s := newStore(t)
	c := NewChecker(s)
	if n, err := c.Count(); err != nil || n != 0 {
		t.Fatalf("empty store: %d keys, %v", n, err)
	}
	secret, k, err := s.Create("laptop")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix) || len(secret) != len(Prefix)+43 {
		t.Errorf("key %q: want %s and 43 base64url characters", secret, Prefix)
	}
	if k.Name != "laptop" || k.Hint != secret[:hintLen] || k.SHA256 != Hash(secret) || k.ID != k.SHA256[:8] || k.CreatedAt.IsZero() {
		t.Errorf("stored key %+v", k)
	}

	// The file holds the hash, never the key, and only its owner reads it.
	raw, err := os.ReadFile(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), secret[hintLen:]) {
		t.Errorf("keys.json holds the key itself:\n%s", raw)
	}
	st, _ := os.Stat(s.Path())
	if st.Mode().Perm() != 0o600 {
		t.Errorf("keys.json mode %v, want 0600", st.Mode().Perm())
	}

	r, err := c.Check(secret)
	if err != nil || r.Keys != 1 || r.ID != k.ID {
		t.Errorf("check of the key: %+v %v", r, err)
	}
	for _, bad := range []string{"", "rbee_", secret[:len(secret)-1], secret + "x", strings.ToUpper(secret), k.SHA256,
		"' OR '1'='1", "Bearer " + secret, "\x00" + secret, "ключ", strings.Repeat("a", 1<<20)} {
		if r, err := c.Check(bad); err != nil || r.ID != "" || r.Keys != 1 {
			t.Errorf("check of %.40q: %+v %v", bad, r, err)
		}
	}

	secret2, k2, err := s.Create("")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.List()
	if err != nil || len(keys) != 2 || keys[0].ID != k.ID || keys[1].ID != k2.ID {
		t.Fatalf("list: %+v %v", keys, err)
	}

	// Revoking takes effect at the next check, without a new Checker.
	if gone, err := s.Revoke(k.ID); err != nil || gone.ID != k.ID {
		t.Fatalf("revoke: %+v %v", gone, err)
	}
	if r, _ := c.Check(secret); r.ID != "" || r.Keys != 1 {
		t.Errorf("revoked key still valid: %+v", r)
	}
	if r, _ := c.Check(secret2); r.ID != k2.ID {
		t.Errorf("remaining key invalid: %+v", r)
	}
	if _, err := s.Revoke(k.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := s.Revoke("../../x"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("revoke of a malformed id: %v", err)
	}
	// Deleting the file leaves no keys.
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Check(secret2); err != nil || r.Keys != 0 || r.ID != "" {
		t.Errorf("after the file is gone: %+v %v", r, err)
	}
}

func TestBadNames(t *testing.T) {
	s := newStore(t)
	for _, name := range []string{strings.Repeat("n", MaxNameLen+1), "a\nb", "tab\there", "\x1b[31m", string([]byte{0xff})} {
		if _, _, err := s.Create(name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := os.Stat(s.Path()); !os.IsNotExist(err) {
		t.Errorf("a refused name wrote the store: %v", err)
	}
}

// Two commands creating keys at once both keep theirs.
func TestConcurrentCreates(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := Open(s.Path()).Create("c"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	keys, err := s.List()
	if err != nil || len(keys) != 8 {
		t.Fatalf("%d keys after 8 creates: %v", len(keys), err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), ".keys.json.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// A store that cannot be trusted is an error for the checker, which the
// queen turns into a refusal: never into "no keys, all open".
func TestBadFiles(t *testing.T) {
	good := Key{ID: "0123abcd", Hint: "rbee_abcd", SHA256: strings.Repeat("ab", 32)}
	doc := func(keys ...Key) string {
		b, _ := json.Marshal(file{Version: 1, Keys: keys})
		return string(b)
	}
	withID := func(id string) Key { k := good; k.ID = id; return k }
	withHash := func(h string) Key { k := good; k.SHA256 = h; return k }
	cases := map[string]struct {
		body string
		mode os.FileMode
	}{
		"not json":          {"{", 0o600},
		"unknown field":     {`{"version":1,"keys":[],"open":true}`, 0o600},
		"version 2":         {`{"version":2,"keys":[]}`, 0o600},
		"bad id":            {doc(withID("../etc")), 0o600},
		"duplicate id":      {doc(good, good), 0o600},
		"short hash":        {doc(withHash("abcd")), 0o600},
		"upper hash":        {doc(withHash(strings.Repeat("AB", 32))), 0o600},
		"world-writable":    {doc(good), 0o666},
		"group-writable":    {doc(good), 0o620},
		"trailing document": {doc(good) + doc(good), 0o600},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			if err := os.MkdirAll(filepath.Dir(s.Path()), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.Path(), []byte(c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(s.Path(), c.mode); err != nil {
				t.Fatal(err)
			}
			if n, err := NewChecker(s).Count(); err == nil {
				t.Errorf("checker accepted it (%d keys)", n)
			}
			if _, err := s.List(); err == nil {
				t.Error("list accepted it")
			}
			if _, _, err := s.Create("x"); err == nil {
				t.Error("create wrote over it")
			}
		})
	}
}

// The checker keeps what it read until the file changes, and notices a
// change of content at the same size.
func TestCheckerReloads(t *testing.T) {
	s := newStore(t)
	c := NewChecker(s)
	a, _, err := s.Create("a")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Check(a); r.ID == "" {
		t.Fatal("key a invalid")
	}
	b, kb, err := s.Create("b")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.Check(b); r.ID != kb.ID || r.Keys != 2 {
		t.Errorf("new key b not seen: %+v", r)
	}
}
