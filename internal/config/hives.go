package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// Hive is one host of hives.conf.
type Hive struct {
	Alias        string
	HostName     string // default: the alias
	User         string
	Port         int // SSH port, default 22
	IdentityFile string
	HivePort     int    // default 7835
	BinaryPath   string // where the hive binaries live on the host
}

// IsLocal reports whether the hive runs on this machine, started as a local
// process rather than over SSH.
func (h Hive) IsLocal() bool { return h.Alias == "localhost" }

// Names that may appear in hives.conf: host names, aliases and users never
// reach a shell, and a leading '-' could turn into an ssh option. An alias
// is a hive id, checked by wire.CheckHiveID like everywhere else.
var (
	validHost = regexp.MustCompile(`^[A-Za-z0-9_\[][A-Za-z0-9._:%\[\]-]{0,252}$`)
	validUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$`)
)

// LocalHive is the implicit entry for this machine.
func LocalHive() Hive {
	return Hive{Alias: "localhost", HostName: "127.0.0.1", HivePort: DefaultHivePort}
}

// LoadHives reads hives.conf from ConfigDir. The localhost hive is always
// present, first, unless the file configures it itself.
func LoadHives() ([]Hive, error) {
	dir, err := ConfigDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "hives.conf")
	b, err := ReadPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Hive{LocalHive()}, nil
	}
	if err != nil {
		return nil, err
	}
	hives, err := ParseHives(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, h := range hives {
		if h.IsLocal() {
			return hives, nil
		}
	}
	return append([]Hive{LocalHive()}, hives...), nil
}

// FindHive returns the hive with the given alias.
func FindHive(hives []Hive, alias string) (Hive, bool) {
	for _, h := range hives {
		if h.Alias == alias {
			return h, true
		}
	}
	return Hive{}, false
}

// ParseHives parses the SSH-config style of hives.conf: "Host alias" starts
// an entry, then "Keyword value" lines; '#' starts a comment; keywords are
// case-insensitive, and "Keyword=value" works too.
func ParseHives(r io.Reader) ([]Hive, error) {
	var hives []Hive
	var cur *Hive
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := splitKV(line)
		if !ok {
			return nil, fmt.Errorf("line %d: want \"Keyword value\", got %q", n, line)
		}
		if strings.EqualFold(key, "Host") {
			if err := wire.CheckHiveID(val); err != nil {
				return nil, fmt.Errorf("line %d: host alias: %w", n, err)
			}
			for _, h := range hives {
				if h.Alias == val {
					return nil, fmt.Errorf("line %d: host %q is configured twice", n, val)
				}
			}
			hives = append(hives, Hive{Alias: val})
			cur = &hives[len(hives)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("line %d: %s before any Host line", n, key)
		}
		if err := cur.set(key, val); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i := range hives {
		h := &hives[i]
		if h.HostName == "" {
			h.HostName = h.Alias
			if h.IsLocal() {
				h.HostName = "127.0.0.1"
			}
		}
		if h.Port == 0 {
			h.Port = 22
		}
		if h.HivePort == 0 {
			h.HivePort = DefaultHivePort
		}
	}
	return hives, nil
}

func splitKV(line string) (string, string, bool) {
	i := strings.IndexAny(line, " \t=")
	if i <= 0 {
		return "", "", false
	}
	key := line[:i]
	val := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line[i:]), "="))
	val = strings.Trim(val, `"`)
	return key, val, val != ""
}

func (h *Hive) set(key, val string) error {
	switch strings.ToLower(key) {
	case "hostname":
		if !validHost.MatchString(val) {
			return fmt.Errorf("HostName %q is not a host name or address", val)
		}
		h.HostName = val
	case "user":
		if !validUser.MatchString(val) {
			return fmt.Errorf("User %q is not a user name", val)
		}
		h.User = val
	case "port", "hiveport":
		p, err := strconv.Atoi(val)
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%s %q is not a port", key, val)
		}
		if strings.EqualFold(key, "port") {
			h.Port = p
		} else {
			h.HivePort = p
		}
	case "identityfile":
		h.IdentityFile = val
	case "binarypath":
		if !strings.HasPrefix(val, "/") && !strings.HasPrefix(val, "~/") {
			return fmt.Errorf("BinaryPath %q must be absolute or start with ~/", val)
		}
		h.BinaryPath = val
	default:
		return fmt.Errorf("unknown keyword %q (known: HostName, User, Port, IdentityFile, HivePort, BinaryPath)", key)
	}
	return nil
}
