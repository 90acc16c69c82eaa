package queen

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

// hiveTokens keeps one secret per remote hive, made at install, in
// ConfigDir/hive-tokens/<alias> (0600). The queen presents it to the hive
// and its workers, and the workers present it with their heartbeats, so a
// hive's machine holds only its own secret: it can neither drive another
// hive nor report workers in another hive's name. The files are read at
// each use, so an install or uninstall needs no restart.
type hiveTokens struct{ dir string }

func (t hiveTokens) path(alias string) (string, error) {
	if !config.ValidAlias(alias) {
		return "", fmt.Errorf("hive alias %q is not valid", alias)
	}
	if t.dir != "" {
		return filepath.Join(t.dir, alias), nil
	}
	dir, err := config.ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "hive-tokens", alias), nil
}

// get returns the hive's token, or "" when it has none. A name that is no
// alias (a worker started by hand may report any hive id) has none.
func (t hiveTokens) get(alias string) (string, error) {
	if !config.ValidAlias(alias) {
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

// ensure returns the hive's token, making one when it has none. A token
// that exists is kept, so installing again does not lock the queen out of
// a hive that runs with it.
func (t hiveTokens) ensure(alias string) (tok string, created bool, err error) {
	if tok, err := t.get(alias); err != nil || tok != "" {
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

func (t hiveTokens) remove(alias string) error {
	p, err := t.path(alias)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// hiveToken is what the queen presents to hive alias and its workers: the
// hive's own token when it has one, else the queen's (the local hive).
func (s *Server) hiveToken(alias string) string {
	if tok, err := s.tokens.get(alias); err == nil && tok != "" {
		return tok
	} else if err != nil {
		s.log.Warn("cannot read a hive token", "hive", alias, "err", err)
	}
	return s.opt.Token
}

// authHeartbeat decides whether a heartbeat in the name of hive hiveID may
// be taken. A hive with its own token must send it (the queen's token also
// does, being the key to everything); any other hive's workers need the
// queen's token when there is one, and otherwise must be on this machine
// unless the queen listens on loopback only.
func (s *Server) authHeartbeat(r *http.Request, hiveID string) error {
	got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	eq := func(want string) bool {
		return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	hiveTok, err := s.tokens.get(hiveID)
	if err != nil {
		return wire.Errorf(wire.CodeInternal, "reading the token of hive %s: %v", hiveID, err)
	}
	switch {
	case eq(hiveTok), eq(s.opt.Token):
		return nil
	case hiveTok != "":
		return wire.Errorf(wire.CodeUnauthorized, "a heartbeat for hive %q needs that hive's token", hiveID)
	case s.opt.Token != "":
		return wire.Errorf(wire.CodeUnauthorized, "a valid bearer token is required (queen_token in config.toml)")
	case !s.opt.Loopback && !httpapi.FromThisMachine(r):
		return wire.Errorf(wire.CodeForbidden, "heartbeats from other machines need their hive's token: install that hive with rbee hive install")
	}
	return nil
}
