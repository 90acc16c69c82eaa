package fleet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/wire"
)

// Tokens keeps one secret per hive, in Dir/<alias> (0600): made at install
// for a remote hive, at its first start for the local one (when the queen
// has a token). The queen presents it to the hive and its workers, and the
// workers present it with their heartbeats, so a hive's machine holds only
// its own secret: it can neither drive another hive nor report workers in
// another hive's name. The files are read at each use, so an install or
// uninstall needs no restart.
type Tokens struct {
	// Dir holds the files; empty: config.ConfigDir()/hive-tokens.
	Dir string
}

func (t Tokens) path(alias string) (string, error) {
	if err := wire.CheckHiveID(alias); err != nil {
		return "", err
	}
	if t.Dir != "" {
		return filepath.Join(t.Dir, alias), nil
	}
	dir, err := config.ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hive-tokens", alias), nil
}

// Get returns the hive's token, or "" when it has none. A name that is no
// hive id (a worker started by hand may report any hive id) has none.
func (t Tokens) Get(alias string) (string, error) {
	if wire.CheckHiveID(alias) != nil {
		return "", nil
	}
	p, err := t.path(alias)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("%s does not hold a token; remove it and run rbee hive install -a %s again", p, alias)
	}
	return tok, nil
}

// Ensure returns the hive's token, making one when it has none. A token
// that exists is kept, so installing again does not lock the queen out of
// a hive that runs with it.
func (t Tokens) Ensure(alias string) (tok string, created bool, err error) {
	if tok, err := t.Get(alias); err != nil || tok != "" {
		return tok, false, err
	}
	p, err := t.path(alias)
	if err != nil {
		return "", false, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", false, err
	}
	tok = hex.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", false, err
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+alias+".tmp-*")
	if err != nil {
		return "", false, err
	}
	_, werr := f.WriteString(tok + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return "", false, err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return "", false, err
	}
	return tok, true, nil
}

// Remove forgets the hive's token.
func (t Tokens) Remove(alias string) error {
	p, err := t.path(alias)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
