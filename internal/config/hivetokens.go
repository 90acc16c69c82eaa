package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// HiveTokens keeps one secret per hive, in Dir/<alias> (0600): made at
// install for a remote hive, and when the local hive (or a hive started by
// hand on this machine) first needs one. The queen presents it to the hive,
// and derives from it each worker's credential (httpapi.WorkerToken), which
// the worker requires and proves its heartbeats with; so a hive's machine
// holds only its own secret: it can neither drive another hive nor report
// workers in another hive's name. The files are read at each use, so an
// install or uninstall needs no restart.
type HiveTokens struct {
	// Dir holds the files; empty: ConfigDir()/hive-tokens.
	Dir string
}

// Path is the file of hive alias's token.
func (t HiveTokens) Path(alias string) (string, error) {
	if err := wire.CheckHiveID(alias); err != nil {
		return "", err
	}
	if t.Dir != "" {
		return filepath.Join(t.Dir, alias), nil
	}
	dir, err := ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hive-tokens", alias), nil
}

// Get returns the hive's token, or "" when it has none. A name that is no
// hive id (a heartbeat may claim any) has none.
func (t HiveTokens) Get(alias string) (string, error) {
	if wire.CheckHiveID(alias) != nil {
		return "", nil
	}
	p, err := t.Path(alias)
	if err != nil {
		return "", err
	}
	b, err := ReadPrivate(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if err := httpapi.CheckToken(tok); err != nil {
		return "", fmt.Errorf("%s does not hold a usable token (%v); remove it and run rbee hive install -a %s again", p, err, alias)
	}
	return tok, nil
}

// Ensure returns the hive's token, making one (256 random bits, hex) when
// it has none. A token that exists is kept, so installing again does not
// lock the queen out of a hive that runs with it. Two processes ensuring
// at once agree: the file is created exclusively, and the one that loses
// reads the winner's.
func (t HiveTokens) Ensure(alias string) (tok string, created bool, err error) {
	if tok, err := t.Get(alias); err != nil || tok != "" {
		return tok, false, err
	}
	p, err := t.Path(alias)
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
	// Written whole under a temporary name, then linked into place: a
	// reader never sees half a token, and link fails if another process
	// won the race.
	f, err := os.CreateTemp(filepath.Dir(p), "."+alias+".tmp-*")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(tok + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return "", false, err
	}
	if err := os.Link(f.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			tok, err := t.Get(alias)
			return tok, false, err
		}
		return "", false, err
	}
	return tok, true, nil
}

// Remove forgets the hive's token.
func (t HiveTokens) Remove(alias string) error {
	p, err := t.Path(alias)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
