package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pelletier/go-toml/v2"
)

// Config is config.toml. Every field is optional.
type Config struct {
	QueenHost string `toml:"queen_host"` // where the queen listens (default 127.0.0.1)
	QueenPort int    `toml:"queen_port"` // default 7833
	// QueenToken, when set, is required by the queen on every request and
	// is what allows it to listen on a non-loopback address.
	QueenToken string `toml:"queen_token"`
	// QueenAdvertiseURL is the queen's URL as hives on other machines (and
	// their workers) reach it, e.g. http://192.168.1.10:7833. Empty: the
	// address this machine connects to the host from, over SSH, with the
	// queen's port.
	QueenAdvertiseURL string `toml:"queen_advertise_url"`
	// KeepAlive is how long a worker may sit idle (no request running on
	// it or waiting for it) before the queen stops it; "0" keeps workers
	// until they are stopped by hand. Unset: DefaultKeepAlive (5m).
	KeepAlive *Duration `toml:"keep_alive"`
	// MaxQueue is how many requests for one model may wait in the queen
	// for a free slot before new ones are refused with queue_full. Unset:
	// DefaultMaxQueue (128).
	MaxQueue int `toml:"max_queue"`
}

// Load reads config.toml from ConfigDir; a missing file is the defaults.
func Load() (Config, error) {
	dir, err := ConfigDir()
	if err != nil {
		return Config{}, err
	}
	return LoadFile(filepath.Join(dir, "config.toml"))
}

// LoadFile reads one config file; a missing file is the defaults. Unknown
// keys are an error, so a misspelt setting does not pass silently, and so
// is a file or folder that other users may write (CheckPrivate).
func LoadFile(path string) (Config, error) {
	var c Config
	b, err := ReadPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c.withDefaults(), nil
	}
	if err != nil {
		return c, err
	}
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	if c.QueenPort < 0 || c.QueenPort > 65535 {
		return c, fmt.Errorf("%s: queen_port %d is not a port", path, c.QueenPort)
	}
	if err := CheckAdvertiseURL(c.QueenAdvertiseURL); err != nil {
		return c, fmt.Errorf("%s: queen_advertise_url: %v", path, err)
	}
	if err := c.checkScheduling(); err != nil {
		return c, fmt.Errorf("%s: %v", path, err)
	}
	return c.withDefaults(), nil
}

func (c Config) withDefaults() Config {
	if c.QueenHost == "" {
		c.QueenHost = "127.0.0.1"
	}
	if c.QueenPort == 0 {
		c.QueenPort = DefaultQueenPort
	}
	return c
}

// QueenURL is the URL the CLI uses: flag, else $RBEE_QUEEN_URL, else the
// configured host and port.
func (c Config) QueenURL(flag string) string {
	if flag != "" {
		return flag
	}
	if u := os.Getenv("RBEE_QUEEN_URL"); u != "" {
		return u
	}
	host := c.QueenHost
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(c.QueenPort))
}
