package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
)

// configHome points XDG_CONFIG_HOME at a fresh folder and returns the rbee
// config folder in it, created 0700.
func configHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", home)
	dir := filepath.Join(home, "rbee")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// A world-writable config folder used to be accepted, although anyone could
// then replace keys.json or a hive's token in it. Every way into the config
// refuses it with one line naming the folder and the chmod that fixes it.
func TestConfigDirOthersMayWrite(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o757, 0o777 | os.ModeSticky} {
		dir := configHome(t)
		chmod(t, dir, mode)
		st, _ := os.Stat(dir)
		want := fmt.Sprintf("refusing %s: other users may write it (mode %#o); run chmod go-w %s", dir, st.Mode().Perm(), dir)
		for name, load := range map[string]func() error{
			"ConfigDir": func() error { _, err := ConfigDir(); return err },
			"Load":      func() error { _, err := Load(); return err },
			"LoadHives": func() error { _, err := LoadHives(); return err },
			"HiveTokens.Get": func() error {
				_, err := HiveTokens{}.Get("gpu-box")
				return err
			},
		} {
			if err := load(); err == nil || err.Error() != want {
				t.Errorf("mode %v, %s: %v, want %q", mode, name, err, want)
			}
		}
	}
	for _, mode := range []os.FileMode{0o700, 0o755, 0o500} {
		dir := configHome(t)
		chmod(t, dir, mode)
		if _, err := Load(); err != nil {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	// No folder yet: nothing to refuse.
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(t.TempDir(), "none"))
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
}

// config.toml and hives.conf that other users may write are refused the
// same way, even inside a private folder.
func TestConfigFilesOthersMayWrite(t *testing.T) {
	for _, c := range []struct {
		name string
		load func() error
	}{
		{"config.toml", func() error { _, err := Load(); return err }},
		{"hives.conf", func() error { _, err := LoadHives(); return err }},
	} {
		for _, mode := range []os.FileMode{0o666, 0o620, 0o602} {
			dir := configHome(t)
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			chmod(t, p, mode)
			err := c.load()
			if err == nil || !strings.HasPrefix(err.Error(), "refusing "+p+": other users may write it") ||
				!strings.HasSuffix(err.Error(), "; run chmod go-w "+p) {
				t.Errorf("%s mode %v: %v", c.name, mode, err)
			}
			chmod(t, p, 0o644)
			if err := c.load(); err != nil {
				t.Errorf("%s mode 0644: %v", c.name, err)
			}
		}
	}
}

// A config file or folder that belongs to another user is refused too
// (root's are trusted). Only root can make one.
func TestConfigOfAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	dir := configHome(t)
	p := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(); err == nil || !strings.HasPrefix(err.Error(), "refusing "+p+": it belongs to another user (uid 65534)") {
		t.Errorf("config.toml of another user: %v", err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := ConfigDir(); err == nil || !strings.HasPrefix(err.Error(), "refusing "+dir+": it belongs to another user") {
		t.Errorf("config folder of another user: %v", err)
	}
}

// OpenPrivate reads only regular files, and never blocks on a named pipe;
// a missing file is fs.ErrNotExist once its folder passed.
func TestOpenPrivate(t *testing.T) {
	dir := t.TempDir()
	for kind, p := range testkit.SpecialFiles(t, dir) {
		done := make(chan error, 1)
		go func() { _, err := ReadPrivate(p); done <- err }()
		if err := testkit.Receive(t, "reading a "+kind, done); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v", kind, err)
		}
	}
	if _, err := ReadPrivate(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	chmod(t, dir, 0o777)
	if _, err := ReadPrivate(filepath.Join(dir, "missing")); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing in a folder anyone may write: %v", err)
	}
}
