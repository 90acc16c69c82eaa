package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// ValidHostName reports whether s may be a HostName: a name or address
// that cannot be mistaken for an ssh option or reach a shell.
func ValidHostName(s string) bool { return validHost.MatchString(s) }

// ValidUser reports whether s may be a login name.
func ValidUser(s string) bool { return validUser.MatchString(s) }

// SSHConfigPath is ~/.ssh/config.
func SSHConfigPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".ssh", "config"), nil
}

// SSHConfigHive looks alias up in ~/.ssh/config, the fallback for aliases
// that hives.conf does not name. found is false when no Host block names
// the alias (a lone "Host *" does not count: it names every host).
func SSHConfigHive(alias string) (h Hive, found bool, err error) {
	p, err := SSHConfigPath()
	if err != nil {
		return Hive{}, false, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Hive{}, false, nil
	}
	if err != nil {
		return Hive{}, false, err
	}
	defer f.Close()
	h, found, err = ParseSSHConfig(f, alias)
	if err != nil {
		return Hive{}, false, fmt.Errorf("%s: %w", p, err)
	}
	return h, found, nil
}

// ParseSSHConfig reads the settings ssh would use for alias from an
// ssh_config(5) file: HostName, User, Port and IdentityFile, the first value
// of each that a matching Host block (or the part before any Host) gives.
// Other keywords are ssh's business and are skipped; Match blocks and
// Include are not followed. Values go through the same checks as hives.conf,
// so a name from here never turns into an option or a shell word either.
func ParseSSHConfig(r io.Reader, alias string) (Hive, bool, error) {
	if err := wire.CheckHiveID(alias); err != nil {
		return Hive{}, false, fmt.Errorf("host alias: %w", err)
	}
	h := Hive{Alias: alias}
	found := false
	active := true // settings before the first Host apply to every host
	seen := map[string]bool{}
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := splitKV(line)
		if !ok {
			continue // ssh itself decides what it makes of such a line
		}
		switch k := strings.ToLower(key); k {
		case "host":
			var named bool
			active, named = matchHost(strings.Fields(val), alias)
			found = found || named
			continue
		case "match":
			active = false
			continue
		case "hostname", "user", "port", "identityfile":
			if !active || seen[k] {
				continue
			}
			seen[k] = true
			if err := h.setSSH(k, val); err != nil {
				return Hive{}, false, fmt.Errorf("line %d (for host %s): %w", n, alias, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Hive{}, false, err
	}
	if !found {
		return Hive{}, false, nil
	}
	if h.HostName == "" {
		h.HostName = alias
	}
	if h.Port == 0 {
		h.Port = 22
	}
	h.HivePort = DefaultHivePort
	return h, true, nil
}

// matchHost applies the patterns of one Host line to alias, as ssh does: a
// match on any pattern, and none on a negated one. named says whether a
// pattern other than a bare "*" matched, which is what makes an alias known.
func matchHost(patterns []string, alias string) (match, named bool) {
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		ok, err := path.Match(strings.ToLower(p), strings.ToLower(alias))
		if err != nil || !ok {
			continue
		}
		if neg {
			return false, false
		}
		match = true
		named = named || p != "*"
	}
	return match, named
}

func (h *Hive) setSSH(key, val string) error {
	switch key {
	case "hostname":
		// %h is the only token worth supporting: "HostName %h.lan".
		val = strings.ReplaceAll(val, "%h", h.Alias)
		if strings.Contains(val, "%") {
			return fmt.Errorf("HostName %q: only the %%h token is supported", val)
		}
	case "identityfile":
		if strings.Contains(val, "%") {
			return fmt.Errorf("IdentityFile %q: tokens are not supported", val)
		}
		if !strings.HasPrefix(val, "/") && !strings.HasPrefix(val, "~/") {
			return fmt.Errorf("IdentityFile %q must be absolute or start with ~/", val)
		}
	case "port":
		if _, err := strconv.Atoi(val); err != nil {
			return fmt.Errorf("Port %q is not a port", val)
		}
	}
	return h.set(key, val)
}

// CheckAdvertiseURL accepts "" or http(s)://host:port with nothing else:
// the URL is handed to every remote hive and worker.
func CheckAdvertiseURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q is not an http(s) URL", s)
	case u.Port() == "" || !ValidHostName(u.Hostname()):
		return fmt.Errorf("%q must be http(s)://HOST:PORT", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return fmt.Errorf("%q must be http(s)://HOST:PORT and nothing more", s)
	}
	return nil
}
