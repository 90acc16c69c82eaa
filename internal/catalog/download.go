package catalog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/wire"
)

// DownloadDir is the directory of the catalog that downloaded files go to,
// as hf/<owner>/<repo>/<file>: beside the entries, never mistaken for one
// (entries are the .json files at the top).
const DownloadDir = "hf"

// HFName is where a file of a Hugging Face repository goes, relative to
// the catalog directory. The parts must be valid (modelref.Parse checks
// them); the result is slash separated.
func HFName(owner, repo, file string) string { return path.Join(DownloadDir, owner, repo, file) }

// Root is the catalog directory as an os.Root: downloads write through it,
// so that nothing they do lands outside the catalog.
func (c *Catalog) Root() *os.Root { return c.root }

// Download is a verified file that a download put into the catalog
// directory.
type Download struct {
	ID     string // catalog id
	Source string // where it came from: hf:owner/repo:file
	Name   string // its path relative to the catalog directory (HFName)
	File   string // its name in the repository
	SHA256 string // the digest it was verified against
}

// Present returns the entry with the given id when its model file is still
// there, the size it had when recorded.
func (c *Catalog) Present(id string) (wire.ModelInfo, bool) {
	info, err := c.Get(id)
	if err != nil {
		return wire.ModelInfo{}, false
	}
	st, err := os.Stat(info.Path)
	if err != nil || !st.Mode().IsRegular() || st.Size() != info.SizeBytes {
		return wire.ModelInfo{}, false
	}
	return info, true
}

// AddDownload checks a downloaded file as GGUF and records it, owned by
// the catalog: deleting the entry deletes the file. A file that is not a
// usable model is removed (unless another entry names it) and the error is
// ErrBadFile. An id that names another file that still exists is ErrExists.
func (c *Catalog) AddDownload(d Download) (wire.ModelInfo, error) {
	if err := checkID(d.ID); err != nil {
		return wire.ModelInfo{}, err
	}
	if d.Name == "" || !fs.ValidPath(d.Name) || !filepath.IsLocal(filepath.FromSlash(d.Name)) {
		return wire.ModelInfo{}, fmt.Errorf("%w: %q is not a path inside the catalog", ErrInvalidID, d.Name)
	}
	p := filepath.Join(c.dir, filepath.FromSlash(d.Name))
	f, err := gguf.Check(p)
	if err == nil {
		err = f.RequireWeights()
	}
	if err != nil {
		c.mu.Lock()
		if !c.pathUsedLocked(p) {
			if rerr := c.root.Remove(filepath.FromSlash(d.Name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				c.log.Warn("cannot remove a downloaded file that is not a model", "path", p, "err", rerr)
			}
		}
		c.mu.Unlock()
		return wire.ModelInfo{}, fmt.Errorf("%w: downloaded %s: %w", ErrBadFile, d.File, err)
	}
	info := wire.ModelInfo{ID: d.ID, Source: d.Source, Path: p, File: d.File, SHA256: d.SHA256, AddedAt: now()}
	facts(&info, f)

	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[info.ID]; ok {
		if old.Model.Path != info.Path && fileExists(old.Model.Path) {
			if !c.pathUsedLocked(p) {
				_ = c.root.Remove(filepath.FromSlash(d.Name))
			}
			return wire.ModelInfo{}, fmt.Errorf("%w: model id %q already names %s; delete that model first",
				ErrExists, info.ID, old.Model.Path)
		}
		if old.Model.Path == info.Path {
			info.AddedAt, info.LastUsedAt = old.Model.AddedAt, old.Model.LastUsedAt
		}
	}
	rec := record{Version: recordVersion, Model: info, Owned: true}
	if err := c.writeLocked(rec); err != nil {
		return wire.ModelInfo{}, err
	}
	c.entries[info.ID] = rec
	return info, nil
}

// pathUsedLocked reports whether an entry names the file at p.
func (c *Catalog) pathUsedLocked(p string) bool {
	for _, rec := range c.entries {
		if rec.Model.Path == p {
			return true
		}
	}
	return false
}
