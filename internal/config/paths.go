// Package config finds rbee's files and reads its configuration:
// $XDG_CONFIG_HOME/rbee/config.toml and hives.conf (default ~/.config/rbee),
// and $XDG_DATA_HOME/rbee (default ~/.local/share/rbee) for the model
// catalog and logs. Every program resolves paths here, so HOME=$(mktemp -d)
// isolates a test completely.
package config

import (
	"errors"
	"os"
	"path/filepath"
)

// Default ports (contracts.md).
const (
	DefaultQueenPort = 7833
	DefaultHivePort  = 7835
)

// ConfigDir is $XDG_CONFIG_HOME/rbee, else ~/.config/rbee. A folder there
// that other users may write is an error (CheckPrivate): they could replace
// anything in it, keys.json and the hives' tokens included. Every program
// finds its config through here, so each refuses to start on such a folder.
func ConfigDir() (string, error) {
	d, err := xdg("XDG_CONFIG_HOME", ".config")
	if err != nil {
		return "", err
	}
	if err := CheckPrivatePath(d); err != nil {
		return "", err
	}
	return d, nil
}

// DataDir is $XDG_DATA_HOME/rbee, else ~/.local/share/rbee. It holds the
// model catalog (models/) and daemon logs (logs/).
func DataDir() (string, error) { return xdg("XDG_DATA_HOME", filepath.Join(".local", "share")) }

// LogDir is DataDir/logs, created if needed.
func LogDir() (string, error) {
	d, err := DataDir()
	if err != nil {
		return "", err
	}
	d = filepath.Join(d, "logs")
	return d, os.MkdirAll(d, 0o700)
}

func xdg(env, fallback string) (string, error) {
	if d := os.Getenv(env); d != "" {
		if !filepath.IsAbs(d) {
			return "", errors.New(env + " must be an absolute path")
		}
		return filepath.Join(d, "rbee"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, fallback, "rbee"), nil
}
