// Package apikeys is the store of the API keys that clients of the queen's
// OpenAI-compatible API present as "Authorization: Bearer <key>". A key is
// shown once, when it is created; the store (ConfigDir/keys.json, mode 0600)
// keeps only its SHA-256, which is enough because keys are 256 random bits:
// nobody can guess one from its hash, so no slow password hash is needed.
//
// The CLI writes the file (rbee key create|list|revoke); the queen reads it
// through a Checker, which notices every change without a restart.
package apikeys

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/config"
)

// Prefix starts every key, so that a key pasted in the wrong place is
// recognisable (and greppable by secret scanners).
const Prefix = "rbee_"

// Limits of the store.
const (
	// MaxKeys bounds the keys a store holds; each request compares against
	// all of them.
	MaxKeys = 1000
	// MaxNameLen bounds a key's name, in bytes.
	MaxNameLen = 64
	// maxFile bounds the file read: MaxKeys entries fit many times over.
	maxFile = 4 << 20
	// hintLen is how much of a key the store keeps in clear so that a person
	// can tell keys apart: the prefix and 4 of its 43 random characters.
	hintLen = len(Prefix) + 4
	// secretBytes is the randomness of a key.
	secretBytes = 32
)

// FileName is the store's name in the config directory.
const FileName = "keys.json"

// ErrNotFound is returned by Revoke for an id that names no key.
var ErrNotFound = errors.New("no such key")

// Key is one stored key: everything but the key itself.
type Key struct {
	ID        string    `json:"id"`     // 8 hex digits, unique in the store
	Name      string    `json:"name"`   // what the person called it; may be empty
	Hint      string    `json:"hint"`   // the key's first characters, e.g. "rbee_Xy3k"
	SHA256    string    `json:"sha256"` // hex SHA-256 of the whole key
	CreatedAt time.Time `json:"created_at"`
}

// file is the JSON document of keys.json.
type file struct {
	Version int   `json:"version"`
	Keys    []Key `json:"keys"`
}

// Path is ConfigDir/keys.json.
func Path() (string, error) {
	dir, err := config.ConfigDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, FileName), nil
}

// Store is a keys.json file.
type Store struct {
	path string
}

// Open returns the store at path; the file need not exist yet.
func Open(path string) *Store { return &Store{path: path} }

// Path is the store's file.
func (s *Store) Path() string { return s.path }

var idRE = regexp.MustCompile(`^[0-9a-f]{8}$`)

// CheckName explains why name cannot name a key, or returns nil.
func CheckName(name string) error {
	switch {
	case len(name) > MaxNameLen:
		return fmt.Errorf("a key name is at most %d bytes, got %d", MaxNameLen, len(name))
	case !utf8.ValidString(name):
		return errors.New("a key name must be UTF-8 text")
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return errors.New("a key name must be printable text: no tabs, newlines or control characters")
	}
	return nil
}

// CheckID explains why id cannot be a key id, or returns nil.
func CheckID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("key id %.32q: want the 8 hex digits `rbee key list` shows", id)
	}
	return nil
}

// Create makes a new key named name, stores its hash and returns the key,
// which exists nowhere else: it cannot be shown again.
func (s *Store) Create(name string) (secret string, k Key, err error) {
	if err := CheckName(name); err != nil {
		return "", Key{}, err
	}
	err = s.update(func(f *file) error {
		if len(f.Keys) >= MaxKeys {
			return fmt.Errorf("%s holds %d keys, the limit; revoke some first", s.path, MaxKeys)
		}
		for {
			secret = newSecret()
			k = Key{Name: name, Hint: secret[:hintLen], SHA256: Hash(secret), CreatedAt: time.Now().UTC().Truncate(time.Second)}
			k.ID = k.SHA256[:8]
			// Ids come from the hash, so two keys share one once in 4
			// billion; draw again rather than store an ambiguous id.
			if !slices.ContainsFunc(f.Keys, func(o Key) bool { return o.ID == k.ID }) {
				break
			}
		}
		f.Keys = append(f.Keys, k)
		return nil
	})
	if err != nil {
		return "", Key{}, err
	}
	return secret, k, nil
}

// List returns the stored keys, oldest first.
func (s *Store) List() ([]Key, error) {
	f, err := s.read()
	if err != nil {
		return nil, err
	}
	return f.Keys, nil
}

// Revoke removes the key with the given id and returns it.
func (s *Store) Revoke(id string) (Key, error) {
	if err := CheckID(id); err != nil {
		return Key{}, err
	}
	var gone Key
	err := s.update(func(f *file) error {
		i := slices.IndexFunc(f.Keys, func(k Key) bool { return k.ID == id })
		if i < 0 {
			return fmt.Errorf("%w with id %s in %s", ErrNotFound, id, s.path)
		}
		gone = f.Keys[i]
		f.Keys = slices.Delete(f.Keys, i, i+1)
		return nil
	})
	return gone, err
}

// Hash is the hex SHA-256 of a key, as the store keeps it.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func newSecret() string {
	var b [secretBytes]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return Prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// read loads the file; a missing file is an empty store. A file or folder
// that other users may write is refused (config.CheckPrivate).
func (s *Store) read() (file, error) {
	fh, _, err := config.OpenPrivate(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return file{Version: 1}, nil
	}
	if err != nil {
		return file{}, err
	}
	defer fh.Close()
	return parse(s.path, fh)
}

// update changes the file under an exclusive lock, so that two rbee
// commands at once cannot lose each other's key, and replaces it atomically,
// so that the queen never reads half a file.
func (s *Store) update(change func(*file) error) error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", s.path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too

	f, err := s.read()
	if err != nil {
		return err
	}
	if err := change(&f); err != nil {
		return err
	}
	f.Version = 1
	if f.Keys == nil {
		f.Keys = []Key{}
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.path, append(data, '\n'))
}

// writeAtomic writes data to a temporary file beside path, syncs it and
// renames it over path: a crash leaves the old file or the new one, never a
// mix, and never a stray temporary file under the final name.
func writeAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(filepath.Dir(path)); derr == nil {
		_ = d.Sync() // makes the rename itself durable
		d.Close()
	}
	return nil
}
