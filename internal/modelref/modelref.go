// Package modelref parses the model references a person types (a catalog
// id, a path to a .gguf file, or hf:owner/repo[:file.gguf]) and derives the
// catalog id every daemon matches models by. The id becomes a file name in
// the hive's catalog, so whatever the input, an id this package returns is
// one safe path element.
package modelref

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/wire"
)

// Kind says what a reference names.
type Kind int

// Kinds of references.
const (
	KindID   Kind = iota + 1 // an entry of a hive's catalog
	KindPath                 // a .gguf file on the hive's machine
	KindHF                   // a Hugging Face repository, optionally one file of it
)

func (k Kind) String() string {
	switch k {
	case KindID:
		return "id"
	case KindPath:
		return "path"
	case KindHF:
		return "hf"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Limits on references.
const (
	MaxPathLen = 4096
	// maxHFName bounds a Hugging Face owner or repository name (HF's own
	// limit is 96).
	maxHFName = 96
	maxHFFile = 1024
)

// HFPrefix starts a Hugging Face reference.
const HFPrefix = "hf:"

// Ref is a parsed model reference.
type Ref struct {
	Kind Kind
	// ID is the catalog id: the reference itself for KindID; the file's
	// base name without .gguf for KindPath; owner--repo[--file] for KindHF.
	ID string
	// Path is the cleaned path for KindPath. It is absolute unless the
	// reference was relative (./x.gguf, ~/x.gguf, x.gguf): see Absolute.
	Path string
	// Owner, Repo and File are the parts of a KindHF reference; File is
	// empty when none was named.
	Owner, Repo, File string
}

// String gives back the reference in the form Parse accepts.
func (r Ref) String() string {
	switch r.Kind {
	case KindPath:
		return r.Path
	case KindHF:
		s := HFPrefix + r.Owner + "/" + r.Repo
		if r.File != "" {
			s += ":" + r.File
		}
		return s
	}
	return r.ID
}

var hfNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Parse parses a model reference:
//   - hf:owner/repo or hf:owner/repo:file.gguf names a Hugging Face model;
//   - a string that is absolute, starts with ./, ../ or ~/, or ends in
//     .gguf is a path to a model file;
//   - anything else must be a catalog id (see wire.CheckModelID).
func Parse(s string) (Ref, error) {
	if err := checkText(s); err != nil {
		return Ref{}, err
	}
	switch {
	case strings.HasPrefix(s, HFPrefix):
		return parseHF(s[len(HFPrefix):])
	case isPath(s):
		return parsePath(s)
	}
	if err := wire.CheckModelID(s); err != nil {
		return Ref{}, fmt.Errorf("%w (a model is a catalog id, a path to a .gguf file, or hf:owner/repo[:file.gguf])", err)
	}
	return Ref{Kind: KindID, ID: s}, nil
}

// checkText rejects what no kind of reference may hold.
func checkText(s string) error {
	switch {
	case s == "":
		return errors.New("model is empty")
	case len(s) > MaxPathLen:
		return fmt.Errorf("model reference is %d bytes long; the limit is %d", len(s), MaxPathLen)
	case !utf8.ValidString(s):
		return errors.New("model reference is not valid UTF-8")
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("model reference %.64q contains a control character", s)
		}
	}
	return nil
}

func isPath(s string) bool {
	return filepath.IsAbs(s) || strings.HasPrefix(s, "/") ||
		strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, "~/") ||
		hasGGUFSuffix(s)
}

func hasGGUFSuffix(s string) bool {
	return len(s) >= 5 && strings.EqualFold(s[len(s)-5:], ".gguf")
}

func parsePath(s string) (Ref, error) {
	// A backslash or drive letter is a Windows path: on the machines rbee
	// runs on it would name a file with a strange name, never what was meant.
	if strings.Contains(s, `\`) {
		return Ref{}, fmt.Errorf("model path %.64q contains a backslash", s)
	}
	if !hasGGUFSuffix(s) {
		return Ref{}, fmt.Errorf("model path %.64q does not end in .gguf", s)
	}
	clean := filepath.Clean(s)
	if strings.HasPrefix(s, "~/") {
		clean = "~/" + filepath.Clean(s[2:])
	}
	base := filepath.Base(clean)
	id := sanitizeID(base[:len(base)-len(".gguf")])
	if id == "" {
		return Ref{}, fmt.Errorf("model file name %.64q gives no usable model id", base)
	}
	return Ref{Kind: KindPath, ID: id, Path: clean}, nil
}

func parseHF(s string) (Ref, error) {
	repoPart, file, hasFile := strings.Cut(s, ":")
	owner, repo, ok := strings.Cut(repoPart, "/")
	if !ok {
		return Ref{}, fmt.Errorf("hugging face reference %.64q must be hf:owner/repo[:file.gguf]", HFPrefix+s)
	}
	for _, name := range []string{owner, repo} {
		if len(name) > maxHFName || !hfNameRE.MatchString(name) || strings.Contains(name, "..") {
			return Ref{}, fmt.Errorf("hugging face name %.64q must be 1 to %d letters, digits, '.', '_' or '-', without \"..\"", name, maxHFName)
		}
	}
	r := Ref{Kind: KindHF, Owner: owner, Repo: repo}
	id := owner + "--" + repo
	if hasFile {
		if err := checkHFFile(file); err != nil {
			return Ref{}, err
		}
		r.File = file
		id += "--" + strings.ReplaceAll(file[:len(file)-len(".gguf")], "/", "--")
	}
	r.ID = sanitizeID(id)
	if r.ID == "" {
		return Ref{}, fmt.Errorf("hugging face reference %.64q gives no usable model id", HFPrefix+s)
	}
	return r, nil
}

// checkHFFile accepts a relative file path inside a repository: the file
// list of a repository is not trusted to be free of "../".
func checkHFFile(f string) error {
	switch {
	case f == "":
		return errors.New("hugging face file name is empty (leave out the ':' to name no file)")
	case len(f) > maxHFFile:
		return fmt.Errorf("hugging face file name is %d bytes long; the limit is %d", len(f), maxHFFile)
	case !hasGGUFSuffix(f):
		return fmt.Errorf("hugging face file %.64q does not end in .gguf", f)
	case strings.HasPrefix(f, "/") || strings.Contains(f, `\`) || !filepath.IsLocal(f):
		return fmt.Errorf("hugging face file %.64q must be a relative path inside the repository", f)
	}
	for _, part := range strings.Split(f, "/") {
		if part == "" || part == "." || part == ".." || !hfNameRE.MatchString(part) {
			return fmt.Errorf("hugging face file %.64q has a bad path element %.64q", f, part)
		}
	}
	return nil
}

// sanitizeID maps s into the id alphabet: other characters become '-',
// runs of dots collapse to one, leading characters that are not letters or
// digits and trailing dots are dropped. An id that would be longer than
// wire.MaxModelID is cut and given a hash of s, so different long names stay
// different ids. It returns "" when nothing usable is left.
func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteRune(c)
		case c == '.':
			if !strings.HasSuffix(b.String(), ".") {
				b.WriteRune(c)
			}
		default:
			b.WriteRune('-')
		}
	}
	id := strings.TrimLeftFunc(b.String(), func(c rune) bool { return !isAlnum(c) })
	id = strings.TrimRight(id, ".")
	if len(id) > wire.MaxModelID {
		sum := sha256.Sum256([]byte(s))
		id = strings.TrimRight(id[:wire.MaxModelID-9], ".") + "-" + hex.EncodeToString(sum[:4])
	}
	if wire.CheckModelID(id) != nil {
		return ""
	}
	return id
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Absolute makes a path reference absolute on this machine: "~/" is this
// user's home and a relative path is taken from the working directory. The
// CLI calls it before it sends a reference, because the daemons that get it
// have other working directories. Other references come back unchanged.
func Absolute(s string) (string, error) {
	r, err := Parse(s)
	if err != nil || r.Kind != KindPath || filepath.IsAbs(r.Path) {
		return s, err
	}
	if rest, ok := strings.CutPrefix(r.Path, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expanding %s: %w", s, err)
		}
		return filepath.Join(home, rest), nil
	}
	return filepath.Abs(r.Path)
}
