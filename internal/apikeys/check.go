package apikeys

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/rbee/rbee/internal/config"
)

// MaxKeyLen bounds a presented key: longer ones are refused before they are
// hashed. Real keys are 48 bytes.
const MaxKeyLen = 512

// parse reads and validates a keys.json document, opened with
// config.OpenPrivate: whoever could write it, or its folder, could add a key
// of their own.
func parse(path string, r io.Reader) (file, error) {
	var f file
	data, err := io.ReadAll(io.LimitReader(r, maxFile+1))
	if err != nil {
		return f, err
	}
	if len(data) > maxFile {
		return f, fmt.Errorf("%s is larger than %d bytes", path, maxFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("%s: %v", path, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return f, fmt.Errorf("%s: data after the JSON document", path)
	}
	if f.Version != 1 {
		return f, fmt.Errorf("%s: version %d is not one this rbee reads (1)", path, f.Version)
	}
	if len(f.Keys) > MaxKeys {
		return f, fmt.Errorf("%s: %d keys; the limit is %d", path, len(f.Keys), MaxKeys)
	}
	seen := make(map[string]bool, len(f.Keys))
	for i, k := range f.Keys {
		sum, err := hex.DecodeString(k.SHA256)
		switch {
		case CheckID(k.ID) != nil:
			return f, fmt.Errorf("%s: key %d: %v", path, i, CheckID(k.ID))
		case seen[k.ID]:
			return f, fmt.Errorf("%s: two keys have the id %s", path, k.ID)
		case err != nil || len(sum) != sha256.Size || k.SHA256 != hex.EncodeToString(sum):
			return f, fmt.Errorf("%s: key %s: sha256 must be 64 lowercase hex digits", path, k.ID)
		case CheckName(k.Name) != nil:
			return f, fmt.Errorf("%s: key %s: %v", path, k.ID, CheckName(k.Name))
		}
		seen[k.ID] = true
	}
	if f.Keys == nil {
		f.Keys = []Key{}
	}
	return f, nil
}

// Result is the outcome of Checker.Check.
type Result struct {
	// Keys is how many keys exist: with none, no key can be valid.
	Keys int
	// ID is the id of the key presented; empty when it is no valid key.
	ID string
}

// Checker answers whether a presented key is valid. It re-reads the store
// when the file changes (a new file replaces it on every update, so its
// identity, size or time changes), so keys created or revoked take effect
// at the next request. It is safe for concurrent use.
type Checker struct {
	store *Store

	mu     sync.Mutex
	seen   fs.FileInfo // the file the keys below came from; nil: none
	ids    []string
	hashes [][sha256.Size]byte
}

// NewChecker returns a Checker of the store.
func NewChecker(s *Store) *Checker { return &Checker{store: s} }

// Check looks up a presented key. Every stored hash is compared, in constant
// time, whatever matches, so the time taken says nothing about the keys. An
// error means the store cannot be read: the caller must refuse the request.
func (c *Checker) Check(presented string) (Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.refreshLocked(); err != nil {
		return Result{}, err
	}
	res := Result{Keys: len(c.hashes)}
	if presented == "" || len(presented) > MaxKeyLen {
		return res, nil
	}
	sum := sha256.Sum256([]byte(presented))
	match := -1
	for i := range c.hashes {
		if subtle.ConstantTimeCompare(sum[:], c.hashes[i][:]) == 1 {
			match = i
		}
	}
	if match >= 0 {
		res.ID = c.ids[match]
	}
	return res, nil
}

// Count is how many keys exist.
func (c *Checker) Count() (int, error) {
	r, err := c.Check("")
	return r.Keys, err
}

func (c *Checker) refreshLocked() error {
	st, err := os.Stat(c.store.path)
	if errors.Is(err, fs.ErrNotExist) {
		c.seen, c.ids, c.hashes = nil, nil, nil
		// No keys, unless others may write the folder: they could add one.
		return config.CheckPrivatePath(filepath.Dir(c.store.path))
	}
	if err != nil {
		return err
	}
	if c.seen != nil && os.SameFile(c.seen, st) && c.seen.ModTime().Equal(st.ModTime()) && c.seen.Size() == st.Size() {
		return nil
	}
	// The opened file's own identity is what is cached: if it was replaced
	// between the Stat and the open, the next Check sees the difference.
	fh, st, err := config.OpenPrivate(c.store.path)
	if err != nil {
		return err
	}
	defer fh.Close()
	f, err := parse(c.store.path, fh)
	if err != nil {
		return err
	}
	ids := make([]string, len(f.Keys))
	hashes := make([][sha256.Size]byte, len(f.Keys))
	for i, k := range f.Keys {
		ids[i] = k.ID
		_, _ = hex.Decode(hashes[i][:], []byte(k.SHA256)) // checked by parse
	}
	c.seen, c.ids, c.hashes = st, ids, hashes
	return nil
}
