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

// ConfigDir is $XDG_CONFIG_HOME/rbee, else ~/.config/rbee.
func ConfigDir() (string, error) { return xdg("XDG_CONFIG_HOME", ".config") }

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
