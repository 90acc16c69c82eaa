package gguf

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotRegular is wrapped by Open's error for a path that names something
// other than a regular file: a named pipe, a device, a directory, a socket.
var ErrNotRegular = errors.New("gguf: not a regular file")

// Open opens the model file at path for reading, and only a regular file:
// opening a named pipe blocks until a writer comes, perhaps forever, and a
// device or pipe has no size to bound the reading by. Every place that
// opens or checks a model file (the worker, the hive's catalog, the CLI)
// goes through it.
//
// The path is stat'ed first, so that nothing special is ever opened (opening
// some devices does something). The open itself cannot block (O_NONBLOCK),
// and the opened file is stat'ed again: a file swapped for a pipe between
// the two is refused, not waited on. O_NONBLOCK does not change how a
// regular file reads. Errors are *Error, one line that names the path.
func Open(path string) (*os.File, fs.FileInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, openError(path, err)
	}
	if err := requireRegular(path, st); err != nil {
		return nil, nil, err
	}
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, openError(path, err)
	}
	if st, err = fh.Stat(); err != nil {
		fh.Close()
		return nil, nil, &Error{Path: path, Msg: "cannot stat: " + err.Error(), Err: err}
	}
	if err := requireRegular(path, st); err != nil {
		fh.Close()
		return nil, nil, err
	}
	return fh, st, nil
}

func openError(path string, err error) error {
	msg := err.Error()
	var pe *os.PathError
	if errors.As(err, &pe) {
		msg = pe.Err.Error()
	}
	return &Error{Path: path, Msg: "cannot open: " + msg, Err: err}
}

// requireRegular refuses anything but a regular file. The message names
// the path itself ("x.gguf is a named pipe, not a regular file"), so the
// Error has no separate Path.
func requireRegular(path string, st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	return &Error{Msg: path + " is " + kindOf(st.Mode()) + ", not a regular file", Err: ErrNotRegular}
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}
