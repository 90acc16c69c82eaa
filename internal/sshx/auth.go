package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// maxKeyFile bounds a private key file: real ones are a few KiB.
const maxKeyFile = 1 << 20

// authMethods gathers the keys to offer: the target's IdentityFile, else
// the default keys that exist, then what the ssh-agent holds. Encrypted
// keys are left to the agent, since there is nobody to ask for a
// passphrase. closeAgent releases the agent connection after the login.
func authMethods(t Target, opt Options) (methods []ssh.AuthMethod, closeAgent func(), err error) {
	closeAgent = func() {}
	var signers []ssh.Signer
	var encrypted []string
	if t.IdentityFile != "" {
		p, err := expandHome(t.IdentityFile)
		if err != nil {
			return nil, closeAgent, fmt.Errorf("IdentityFile of %s: %w", t.Alias, err)
		}
		s, err := loadKey(p)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			encrypted = append(encrypted, p)
		case err != nil:
			return nil, closeAgent, fmt.Errorf("IdentityFile of %s: %w", t.Alias, err)
		default:
			signers = append(signers, s)
		}
	} else {
		for _, p := range opt.DefaultKeys {
			s, err := loadKey(p)
			var pm *ssh.PassphraseMissingError
			switch {
			case errors.As(err, &pm):
				encrypted = append(encrypted, p)
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				return nil, closeAgent, err
			default:
				signers = append(signers, s)
			}
		}
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if opt.AgentSocket != "" && opt.AgentSocket != "-" {
		if conn, err := net.Dial("unix", opt.AgentSocket); err == nil {
			closeAgent = func() { conn.Close() }
			methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	if len(methods) == 0 {
		if len(encrypted) > 0 {
			return nil, closeAgent, fmt.Errorf("no usable SSH key for %s: %s needs a passphrase; add it to an ssh-agent (ssh-add %s)", t.Alias, encrypted[0], encrypted[0])
		}
		return nil, closeAgent, fmt.Errorf("no SSH key for %s: set IdentityFile in hives.conf, create ~/.ssh/id_ed25519 (ssh-keygen -t ed25519), or run an ssh-agent", t.Alias)
	}
	return methods, closeAgent, nil
}

func loadKey(path string) (ssh.Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxKeyFile {
		return nil, fmt.Errorf("%s is not a private key file", path)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	s, err := ssh.ParsePrivateKey(b)
	var pm *ssh.PassphraseMissingError
	if err != nil && !errors.As(err, &pm) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, err
}

// expandHome resolves "~/" against this user's home; other paths must be
// absolute, so that what is read does not depend on a working directory.
func expandHome(p string) (string, error) {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(home, rest), nil
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("%q must be absolute or start with ~/", p)
	}
	return p, nil
}
