package gguf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

// A named pipe given as a model used to block Check forever in open(2);
// every file that is not a regular one is refused at once, with one line
// that names the path and what it is.
func TestCheckRefusesSpecialFiles(t *testing.T) {
	for kind, path := range testkit.SpecialFiles(t, t.TempDir()) {
		t.Run(kind, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Check(path)
				done <- err
			}()
			err := testkit.Receive(t, "Check of a "+kind, done)
			want := path + " is a " + kind + ", not a regular file"
			if err == nil || err.Error() != want || !errors.Is(err, ErrNotRegular) {
				t.Fatalf("got %v, want %q", err, want)
			}
			var e *Error
			if !errors.As(err, &e) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%v is not a one-line *Error", err)
			}
		})
	}
}

// Open hands back a regular file, readable as usual, with its size.
func TestOpenRegularFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(p, []byte("GGUF1234"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, st, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 16)
	if n, err := f.Read(b); err != nil || string(b[:n]) != "GGUF1234" || st.Size() != 8 {
		t.Fatalf("read %q %v, size %d", b[:n], err, st.Size())
	}
	if _, _, err := Open(p + ".missing"); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotRegular) {
		t.Fatalf("missing file: %v", err)
	}
}

// requireRegular is what refuses a file swapped for a pipe between the stat
// and the open (the open does not block: O_NONBLOCK); that second check
// sees the opened file.
func TestOpenedFileIsCheckedAgain(t *testing.T) {
	files := testkit.SpecialFiles(t, t.TempDir())
	fh, err := os.OpenFile(files["named pipe"], os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := requireRegular("p.gguf", st); !errors.Is(err, ErrNotRegular) || err.Error() != "p.gguf is a named pipe, not a regular file" {
		t.Fatalf("got %v", err)
	}
}
