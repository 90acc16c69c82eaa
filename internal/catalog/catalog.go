// Package catalog is a hive's model catalog: one JSON file per model,
// <id>.json in the catalog directory (DataDir/models), each written
// atomically so that a crash never leaves a half-written entry behind. A
// model imported from a path stays where it is; the entry only records it.
package catalog

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/wire"
)

// Errors of the catalog, for errors.Is.
var (
	ErrInvalidID = errors.New("invalid model id")
	ErrNotFound  = errors.New("no such model in the catalog")
	ErrExists    = errors.New("the model id already names another file")
	ErrBadFile   = errors.New("not a usable model file")
	ErrNotPath   = errors.New("not an absolute path to a .gguf file")
)

// SourceFile is the Source of models imported by reference from a path.
const SourceFile = "file"

const (
	recordVersion = 1
	maxRecord     = 1 << 20
	tmpMarker     = ".tmp-"
)

// record is the content of <id>.json.
type record struct {
	Version int            `json:"version"`
	Model   wire.ModelInfo `json:"model"`
	// Owned means the catalog owns the model file (a download inside the
	// catalog directory), so Delete removes it; an imported file is the
	// user's and is never deleted.
	Owned bool `json:"owned,omitempty"`
}

// Catalog is a hive's model catalog. Its methods are safe for concurrent use.
type Catalog struct {
	dir  string
	root *os.Root // every file access goes through it: nothing escapes dir
	log  *slog.Logger

	mu      sync.Mutex // guards entries and the files
	entries map[string]record
}

// Open opens (creating it if needed) the catalog in dir and reads its
// entries. Corrupt entries are logged and skipped, not deleted, so a
// person can look at them; temporary files of interrupted writes are
// removed.
func Open(dir string, log *slog.Logger) (*Catalog, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalog{dir: dir, root: root, log: log, entries: make(map[string]record)}
	if err := c.load(); err != nil {
		root.Close()
		return nil, err
	}
	return c, nil
}

// Dir is the catalog directory.
func (c *Catalog) Dir() string { return c.dir }

// Close releases the catalog directory.
func (c *Catalog) Close() error { return c.root.Close() }

func (c *Catalog) load() error {
	d, err := c.root.Open(".")
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("catalog: reading %s: %w", c.dir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasPrefix(name, ".") && strings.Contains(name, tmpMarker) {
			if err := c.root.Remove(name); err != nil {
				c.log.Warn("cannot remove a leftover temporary catalog file", "file", name, "err", err)
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || e.IsDir() {
			continue
		}
		rec, err := c.read(name, id, e)
		if err != nil {
			c.log.Warn("skipping a corrupt catalog entry", "file", filepath.Join(c.dir, name), "err", err)
			continue
		}
		c.entries[id] = rec
	}
	return nil
}

func (c *Catalog) read(name, id string, e fs.DirEntry) (record, error) {
	if wire.CheckModelID(id) != nil {
		return record{}, errors.New("the file name is not a model id")
	}
	if !e.Type().IsRegular() {
		return record{}, errors.New("not a regular file")
	}
	f, err := c.root.Open(name)
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecord+1))
	if err != nil {
		return record{}, err
	}
	if len(data) > maxRecord {
		return record{}, fmt.Errorf("larger than %d bytes", maxRecord)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		return record{}, err
	}
	switch {
	case rec.Version != recordVersion:
		return record{}, fmt.Errorf("version %d, want %d", rec.Version, recordVersion)
	case rec.Model.ID != id:
		return record{}, fmt.Errorf("holds model %q", rec.Model.ID)
	case !filepath.IsAbs(rec.Model.Path):
		return record{}, fmt.Errorf("model path %q is not absolute", rec.Model.Path)
	}
	return rec, nil
}

// checkID validates an id before it gets near the filesystem; the error
// wraps ErrInvalidID, which the hive answers with a 400.
func checkID(id string) error {
	if err := wire.CheckModelID(id); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidID, err)
	}
	return nil
}

// Get returns the entry with the given id.
func (c *Catalog) Get(id string) (wire.ModelInfo, error) {
	if err := checkID(id); err != nil {
		return wire.ModelInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.entries[id]
	if !ok {
		return wire.ModelInfo{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return rec.Model, nil
}

// List returns every entry, sorted by id.
func (c *Catalog) List() []wire.ModelInfo {
	c.mu.Lock()
	out := make([]wire.ModelInfo, 0, len(c.entries))
	for _, rec := range c.entries {
		out = append(out, rec.Model)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b wire.ModelInfo) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Import adds the .gguf file at path (absolute) to the catalog by
// reference: the file is checked as GGUF, its metadata recorded, and it is
// neither copied nor moved. Importing the same path again refreshes the
// entry. An id that already names another file that still exists is
// ErrExists; one whose file is gone is replaced.
func (c *Catalog) Import(path string) (wire.ModelInfo, error) {
	ref, err := modelref.Parse(path)
	if err != nil {
		return wire.ModelInfo{}, err
	}
	if ref.Kind != modelref.KindPath || !filepath.IsAbs(ref.Path) {
		return wire.ModelInfo{}, fmt.Errorf("%w: %q", ErrNotPath, path)
	}
	f, err := gguf.Check(ref.Path)
	if err == nil {
		err = f.RequireWeights()
	}
	if err != nil {
		// %w twice: callers tell a special file (gguf.ErrNotRegular), the
		// client's mistake, from a broken model.
		return wire.ModelInfo{}, fmt.Errorf("%w: %w", ErrBadFile, err)
	}
	info := wire.ModelInfo{ID: ref.ID, Source: SourceFile, Path: ref.Path, File: filepath.Base(ref.Path), AddedAt: now()}
	facts(&info, f)

	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[info.ID]; ok {
		if old.Model.Path != info.Path && fileExists(old.Model.Path) {
			return wire.ModelInfo{}, fmt.Errorf("%w: model id %q already names %s; rename %s or delete that model first",
				ErrExists, info.ID, old.Model.Path, filepath.Base(info.Path))
		}
		if old.Model.Path == info.Path {
			info.AddedAt, info.LastUsedAt = old.Model.AddedAt, old.Model.LastUsedAt
		}
	}
	rec := record{Version: recordVersion, Model: info}
	if err := c.writeLocked(rec); err != nil {
		return wire.ModelInfo{}, err
	}
	c.entries[info.ID] = rec
	return info, nil
}

// Delete removes an entry and returns what it was. The model file of an
// imported model is the user's and stays; only files the catalog owns
// inside its directory are removed, once no other entry names them.
func (c *Catalog) Delete(id string) (wire.ModelInfo, error) {
	if err := checkID(id); err != nil {
		return wire.ModelInfo{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.entries[id]
	if !ok {
		return wire.ModelInfo{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err := c.root.Remove(id + ".json"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wire.ModelInfo{}, fmt.Errorf("catalog: %w", err)
	}
	if err := c.syncDirLocked(); err != nil {
		c.log.Warn("cannot sync the catalog directory", "err", err)
	}
	delete(c.entries, id)
	if rec.Owned && !c.pathUsedLocked(rec.Model.Path) {
		if rel, err := filepath.Rel(c.dir, rec.Model.Path); err == nil && filepath.IsLocal(rel) {
			if err := c.root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
				c.log.Warn("cannot remove a model file", "path", rec.Model.Path, "err", err)
			}
		}
	}
	return rec.Model, nil
}

// Touch records that a worker loaded the model now.
func (c *Catalog) Touch(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.entries[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	rec.Model.LastUsedAt = now()
	if err := c.writeLocked(rec); err != nil {
		return err
	}
	c.entries[id] = rec
	return nil
}

// writeLocked writes rec to <id>.json through a synced temporary file and a
// rename, so a reader (or a restart after a crash) sees the old entry or
// the new one, never a mix.
func (c *Catalog) writeLocked(rec record) (err error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + rec.Model.ID + ".json" + tmpMarker + hex.EncodeToString(rnd[:])
	f, err := c.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer func() {
		if err != nil {
			_ = c.root.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("catalog: writing %s: %w", rec.Model.ID, err)
	}
	if err := c.root.Rename(tmp, rec.Model.ID+".json"); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	if err := c.syncDirLocked(); err != nil {
		c.log.Warn("cannot sync the catalog directory", "err", err)
	}
	return nil
}

// syncDirLocked makes a rename or remove durable.
func (c *Catalog) syncDirLocked() error {
	d, err := c.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
