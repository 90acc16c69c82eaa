package sshx

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/pkg/sftp"
)

// files is the SFTP session, opened on first use.
func (c *Client) files() (*sftp.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	// Concurrent writes are safe here: an upload that fails part-way is
	// removed, never renamed into place.
	fc, err := sftp.NewClient(c.conn, sftp.UseConcurrentWrites(true))
	if err != nil {
		return nil, fmt.Errorf("SFTP to %s: %w (is the sftp subsystem enabled in its sshd_config?)", c.target.Alias, err)
	}
	c.sftp = fc
	return fc, nil
}

// Home is the login's home directory on the host.
func (c *Client) Home() (string, error) {
	fc, err := c.files()
	if err != nil {
		return "", err
	}
	// An SFTP session starts in the home directory.
	return fc.Getwd()
}

// ExpandPath resolves a path of the host: "~" and "~/..." against the
// login's home; anything else must be absolute.
func (c *Client) ExpandPath(p string) (string, error) {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, err := c.Home()
		if err != nil {
			return "", err
		}
		return path.Join(home, strings.TrimPrefix(p, "~")), nil
	}
	if !path.IsAbs(p) {
		return "", fmt.Errorf("remote path %q must be absolute or start with ~/", p)
	}
	return path.Clean(p), nil
}

// MkdirAll creates dir and its parents on the host.
func (c *Client) MkdirAll(dir string) error {
	fc, err := c.files()
	if err != nil {
		return err
	}
	if err := fc.MkdirAll(dir); err != nil {
		return fmt.Errorf("creating %s on %s: %w", dir, c.target.Alias, err)
	}
	return nil
}

// Exists reports whether a path exists on the host.
func (c *Client) Exists(p string) (bool, error) {
	fc, err := c.files()
	if err != nil {
		return false, err
	}
	_, err = fc.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Remove removes a file on the host; removed is false when there was none.
func (c *Client) Remove(p string) (removed bool, err error) {
	fc, err := c.files()
	if err != nil {
		return false, err
	}
	err = fc.Remove(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("removing %s on %s: %w", p, c.target.Alias, err)
	}
	return true, nil
}

// Upload copies a local file to remote with the given mode and returns its
// SHA-256. The copy goes to a temporary name first and is renamed into
// place only once the host has the same SHA-256: a broken copy never
// replaces a good file and leaves nothing behind.
func (c *Client) Upload(ctx context.Context, local, remote string, mode os.FileMode) (sum string, err error) {
	src, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer src.Close()
	h := sha256.New()
	if _, err := io.Copy(h, src); err != nil {
		return "", fmt.Errorf("reading %s: %w", local, err)
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	err = c.place(ctx, remote, mode, func(f *sftp.File) error {
		_, err := f.ReadFrom(src)
		return err
	}, sum)
	return sum, err
}

// WriteSecret writes data to remote with mode (0600 for a token). The file
// gets its mode before a byte is written, so the secret is never readable
// by others, and the data goes through SFTP, never a command line.
func (c *Client) WriteSecret(ctx context.Context, remote string, data []byte, mode os.FileMode) error {
	h := sha256.Sum256(data)
	return c.place(ctx, remote, mode, func(f *sftp.File) error {
		_, err := f.Write(data)
		return err
	}, hex.EncodeToString(h[:]))
}

// place writes a temporary file next to remote with fill, checks its
// SHA-256 on the host, and renames it to remote.
func (c *Client) place(ctx context.Context, remote string, mode os.FileMode, fill func(*sftp.File) error, sum string) (err error) {
	fc, err := c.files()
	if err != nil {
		return err
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := remote + ".rbee-tmp-" + hex.EncodeToString(rnd[:])
	f, err := fc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("creating %s on %s: %w", tmp, c.target.Alias, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = fc.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s on %s: %w", tmp, c.target.Alias, err)
	}
	if err := fill(f); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("copying to %s on %s: %w", tmp, c.target.Alias, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s on %s: %w", tmp, c.target.Alias, err)
	}
	got, err := c.remoteSHA256(ctx, tmp)
	if err != nil {
		return err
	}
	if got != sum {
		return fmt.Errorf("the copy of %s on %s is corrupt: SHA-256 %s, want %s", path.Base(remote), c.target.Alias, got, sum)
	}
	if err := fc.PosixRename(tmp, remote); err != nil {
		return fmt.Errorf("renaming %s to %s on %s: %w", tmp, remote, c.target.Alias, err)
	}
	return nil
}

// remoteSHA256 hashes a file on the host: with sha256sum (Linux) or
// shasum (macOS), else by reading it back.
func (c *Client) remoteSHA256(ctx context.Context, p string) (string, error) {
	const script = `if command -v sha256sum >/dev/null 2>&1; then sha256sum -- "$1"
elif command -v shasum >/dev/null 2>&1; then shasum -a 256 -- "$1"
else exit 127; fi`
	out, err := c.Run(ctx, nil, script, p)
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 127 {
		return c.readBackSHA256(p)
	}
	if err != nil {
		return "", fmt.Errorf("checking the copy on %s: %w", c.target.Alias, err)
	}
	sum, _, _ := bytes.Cut(bytes.TrimSpace(out), []byte(" "))
	if len(sum) != 64 {
		return "", fmt.Errorf("checking the copy on %s: unexpected checksum output %.100q", c.target.Alias, out)
	}
	return strings.ToLower(string(sum)), nil
}

func (c *Client) readBackSHA256(p string) (string, error) {
	fc, err := c.files()
	if err != nil {
		return "", err
	}
	f, err := fc.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := f.WriteTo(h); err != nil {
		return "", fmt.Errorf("reading back %s on %s: %w", p, c.target.Alias, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// List returns the names of the regular files in dir on the host; a
// directory that does not exist holds none.
func (c *Client) List(dir string) ([]string, error) {
	fc, err := c.files()
	if err != nil {
		return nil, err
	}
	infos, err := fc.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s on %s: %w", dir, c.target.Alias, err)
	}
	var names []string
	for _, fi := range infos {
		if fi.Mode().IsRegular() {
			names = append(names, fi.Name())
		}
	}
	return names, nil
}

// RemoveDir removes an empty directory on the host; removed is false when
// there was none or it is not empty.
func (c *Client) RemoveDir(dir string) (removed bool, err error) {
	fc, err := c.files()
	if err != nil {
		return false, err
	}
	if err := fc.RemoveDirectory(dir); err != nil {
		return false, nil
	}
	return true, nil
}
