package download

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// Suffixes of the files a download keeps beside its destination.
const (
	partialSuffix = ".partial"
	metaSuffix    = ".partial.meta"
	maxMeta       = 64 << 10
)

// meta is the sidecar of a partial file: what the bytes in it are part of.
// A partial is only resumed for the same SHA-256 and size, that is, the
// same object, whatever URL serves it now.
type meta struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// partial is the file a download writes, and the hash of what it holds.
type partial struct {
	root       *os.Root
	name, meta string // relative to root
	f          *os.File
	size       int64 // bytes in f, all of them hashed into h (once pipe is drained)
	h          hash.Hash
	pipe       *hashPipe // hashes what write writes; nil until started
}

// openFunc opens the partial file; tests swap it to provoke write errors.
type openFunc func(root *os.Root, name string) (*os.File, error)

func openRW(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
}

// openPartial opens the partial file of req, keeping what it holds when its
// sidecar says it belongs to the same object and starting afresh otherwise.
func openPartial(req Request, open openFunc) (*partial, error) {
	p := &partial{root: req.Root, name: req.Name + partialSuffix, meta: req.Name + metaSuffix, h: sha256.New()}
	want := meta{URL: redactString(req.URL), SHA256: req.SHA256, Size: req.Size}
	got := p.readMeta()
	keep := got.SHA256 == want.SHA256 && got.Size == want.Size
	if !keep {
		if err := p.removeFiles(); err != nil {
			return nil, err
		}
		if err := p.writeMeta(want); err != nil {
			return nil, err
		}
	}
	f, err := open(p.root, p.name)
	if err != nil {
		_ = p.root.Remove(p.meta)
		return nil, localError("opening", p.name, err)
	}
	p.f = f
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, localError("reading", p.name, err)
	}
	if keep && st.Mode().IsRegular() && st.Size() > 0 && (req.Size == 0 || st.Size() <= req.Size) {
		n, err := io.Copy(p.h, io.NewSectionReader(f, 0, st.Size()))
		if err != nil {
			f.Close()
			return nil, localError("reading", p.name, err)
		}
		p.size = n
	}
	if err := p.truncate(p.size); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func (p *partial) readMeta() meta {
	f, err := p.root.Open(p.meta)
	if err != nil {
		return meta{}
	}
	defer f.Close()
	var m meta
	data, err := io.ReadAll(io.LimitReader(f, maxMeta))
	if err != nil || json.Unmarshal(data, &m) != nil {
		return meta{}
	}
	return m
}

func (p *partial) writeMeta(m meta) error {
	data, _ := json.Marshal(m)
	f, err := p.root.OpenFile(p.meta, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return localError("writing", p.meta, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = p.root.Remove(p.meta)
		return localError("writing", p.meta, err)
	}
	return nil
}

// startPipe starts hashing on a goroutine of its own: from now on bytes
// are written with buffer and write.
func (p *partial) startPipe(buffers, size int) { p.pipe = newHashPipe(p.h, buffers, size) }

// buffer returns a buffer to read the next bytes into.
func (p *partial) buffer() []byte { return p.pipe.buffer() }

// write appends b, a buffer from buffer, and hashes what reached the file.
// b belongs to the pipe afterwards.
func (p *partial) write(b []byte) error {
	n, err := p.f.Write(b)
	p.pipe.hash(b[:n])
	p.size += int64(n)
	if err != nil {
		return localError("writing", p.name, err)
	}
	return nil
}

// release gives back a buffer from buffer that was not written.
func (p *partial) release(b []byte) { p.pipe.hash(b[:0]) }

// truncate cuts the file to n bytes (0 or its current size) and positions
// writes at its end.
func (p *partial) truncate(n int64) error {
	if n == 0 {
		if p.pipe != nil {
			p.pipe.drain()
		}
		p.h.Reset()
		p.size = 0
	}
	if st, err := p.f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := p.f.Truncate(n); err != nil {
			return localError("truncating", p.name, err)
		}
	}
	if _, err := p.f.Seek(n, io.SeekStart); err != nil {
		return localError("seeking in", p.name, err)
	}
	return nil
}

// discard throws away what the partial holds.
func (p *partial) discard() error { return p.truncate(0) }

func (p *partial) sum() string {
	if p.pipe != nil {
		p.pipe.drain()
	}
	return hex.EncodeToString(p.h.Sum(nil))
}

// commit makes the verified partial file the destination: synced, renamed
// over it, the rename made durable, the sidecar removed.
func (p *partial) commit(dest string) error {
	if err := p.f.Sync(); err != nil {
		return localError("syncing", p.name, err)
	}
	err := p.f.Close()
	p.f = nil
	if err != nil {
		return localError("closing", p.name, err)
	}
	if err := p.root.Rename(p.name, dest); err != nil {
		return localError("renaming", p.name, err)
	}
	syncDir(p.root, path.Dir(dest))
	_ = p.root.Remove(p.meta)
	return nil
}

// close closes the file, keeping it for a later resume, and stops the
// hashing.
func (p *partial) close() {
	if p.pipe != nil {
		p.pipe.close()
		p.pipe = nil
	}
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// remove closes and deletes the partial file and its sidecar.
func (p *partial) remove() error {
	p.close()
	return p.removeFiles()
}

func (p *partial) removeFiles() error {
	for _, name := range []string{p.name, p.meta} {
		if err := p.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return localError("removing", name, err)
		}
	}
	return nil
}

func syncDir(root *os.Root, dir string) {
	if d, err := root.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// localError describes a failed file operation; a full disk becomes
// ErrDiskFull, which is never retried.
func localError(op, name string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %s %s: %v", ErrDiskFull, op, name, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}
