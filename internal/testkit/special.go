package testkit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// SpecialFiles makes, in dir, one .gguf name of each kind of file that is
// not a regular one, which every reader of model files must refuse without
// blocking: a named pipe (opening it waits for a writer), a directory, a
// character device (a symbolic link to /dev/zero, which never ends) and a
// unix socket. The map is keyed by the kind, as the refusals name it.
func SpecialFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{
		"named pipe":       filepath.Join(dir, "fifo.gguf"),
		"directory":        filepath.Join(dir, "dir.gguf"),
		"character device": filepath.Join(dir, "zero.gguf"),
		"socket":           filepath.Join(dir, "sock.gguf"),
	}
	if err := syscall.Mkfifo(files["named pipe"], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(files["directory"], 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", files["character device"]); err != nil {
		t.Fatal(err)
	}
	// A socket's path must fit in 108 bytes, which a test's directory may
	// not: it is bound in a short one and moved (the socket file stays one).
	short, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(short)
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = syscall.Bind(fd, &syscall.SockaddrUnix{Name: filepath.Join(short, "s")})
	syscall.Close(fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(short, "s"), files["socket"]); err != nil {
		t.Fatal(err)
	}
	return files
}
