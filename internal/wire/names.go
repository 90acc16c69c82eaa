package wire

import (
	"fmt"
	"regexp"
	"strings"
)

// The names that cross process boundaries, each checked by one function
// wherever it arrives (CLI flags, job operations, heartbeats, the hive's
// catalog), so that a name one part takes is never refused by another. None
// may start with '-' (it could become an option of a program) or hold a
// path separator, whitespace or a control character.
const (
	MaxWorkerID = 128
	MaxHiveID   = 63
	MaxModelID  = 128
)

var (
	workerIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	hiveIDRE   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]*$`)
	modelIDRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// CheckWorkerID explains why s is not a worker id, or returns nil: 1 to 128
// characters of [A-Za-z0-9._-], starting with a letter or digit.
func CheckWorkerID(s string) error {
	return checkName("worker id", s, MaxWorkerID, workerIDRE, "a letter or digit")
}

// CheckHiveID explains why s is not a hive id (a hive's alias in hives.conf,
// and the id its workers report), or returns nil: 1 to 63 characters of
// [A-Za-z0-9._-], starting with a letter, digit or '_'.
func CheckHiveID(s string) error {
	return checkName("hive alias", s, MaxHiveID, hiveIDRE, "a letter, digit or '_'")
}

// CheckModelID explains why s is not a catalog id, or returns nil: 1 to 128
// characters of [A-Za-z0-9._-], starting with a letter or digit, without
// "..", and not ending in a dot (which some filesystems drop, so two ids
// could name one file).
func CheckModelID(s string) error {
	if err := checkName("model id", s, MaxModelID, modelIDRE, "a letter or digit"); err != nil {
		return err
	}
	switch {
	case strings.Contains(s, ".."):
		return fmt.Errorf("model id %.64q contains \"..\"", s)
	case strings.HasSuffix(s, "."):
		return fmt.Errorf("model id %.64q ends with a dot", s)
	}
	return nil
}

func checkName(kind, s string, limit int, re *regexp.Regexp, first string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty", kind)
	case len(s) > limit:
		return fmt.Errorf("%s is %d bytes long; the limit is %d", kind, len(s), limit)
	case !re.MatchString(s):
		return fmt.Errorf("%s %.64q may only hold letters, digits, '.', '_' and '-', starting with %s", kind, s, first)
	}
	return nil
}
