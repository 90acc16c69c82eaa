package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// maxFile bounds a config file read whole: config.toml, hives.conf, a
// hive's token. They are a few hundred bytes.
const maxFile = 1 << 20

// CheckPrivate refuses a config file or folder that a user other than this
// one may change: one that is writable by its group or by everyone, or
// that belongs to another user (root excepted, who may change it anyway).
// Whoever can write the folder can replace keys.json or a hive's token in
// it, and whoever can write a file can put their own key or address there.
// The error is one line naming the path and the command that fixes it.
func CheckPrivate(path string, st fs.FileInfo) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != uint32(os.Getuid()) && sys.Uid != 0 {
		return fmt.Errorf("refusing %s: it belongs to another user (uid %d); run chown %d %s as root, or remove it", path, sys.Uid, os.Getuid(), path)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("refusing %s: other users may write it (mode %#o); run chmod go-w %s", path, st.Mode().Perm(), path)
	}
	return nil
}

// CheckPrivatePath applies CheckPrivate to what path names (a folder, most
// often), when it exists.
func CheckPrivatePath(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return CheckPrivate(path, st)
}

// OpenPrivate opens a config file for reading after checking that no other
// user may change it or the folder it is in (CheckPrivate); the opened file
// itself is checked, so a file swapped in meanwhile is refused too. A
// missing file is an error that wraps fs.ErrNotExist, after its folder
// passed: a folder others may write is refused even while the file is
// missing, since they could add it.
func OpenPrivate(path string) (*os.File, fs.FileInfo, error) {
	if err := CheckPrivatePath(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	// Only a regular file: opening a named pipe would wait for a writer.
	if !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", path)
	}
	// O_NONBLOCK: a file swapped for a pipe since the Stat is refused
	// below, not waited on.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	if st, err = f.Stat(); err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil {
		err = CheckPrivate(path, st)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// ReadPrivate reads a config file whole, through OpenPrivate.
func ReadPrivate(path string) ([]byte, error) {
	f, _, err := OpenPrivate(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err == nil && len(b) > maxFile {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxFile)
	}
	return b, err
}
