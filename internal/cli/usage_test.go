package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// What README.md's "Using rbee" promises, exactly: a mistake in the command
// line exits 2 and its first line is "rbee COMMAND: reason" ("rbee: reason"
// before a command is known); any other failure is one line "rbee: reason"
// and exits 1. The issue found usage errors exiting 2 as "rbee infer: ..."
// where the README said "rbee: ..." and 1.
func TestUsageErrorsAsDocumented(t *testing.T) {
	isolate(t)
	for _, c := range []struct {
		args  []string
		first string // the whole first line of stderr
	}{
		{nil, "rbee: no command given"},
		{[]string{"frobnicate"}, `rbee: unknown command "frobnicate"`},
		{[]string{"--bogus", "status"}, "rbee: unknown flag --bogus"},
		{[]string{"--queen-url"}, "rbee: flag --queen-url needs a value"},
		{[]string{"queen"}, "rbee queen: no subcommand given"},
		{[]string{"queen", "explode"}, `rbee queen: unknown subcommand "explode"`},
		{[]string{"status", "--bogus"}, "rbee status: unknown flag --bogus"},
		{[]string{"status", "extra"}, "rbee status: wrong number of arguments"},
		{[]string{"infer", "hello"}, "rbee infer: -m MODEL is required (see rbee infer --help)"},
		{[]string{"infer", "-m", "m", "--max-tokens", "0", "hi"}, "rbee infer: "},
		{[]string{"worker", "spawn"}, "rbee worker spawn: -m MODEL is required (see rbee worker spawn --help)"},
		{[]string{"model", "get", "x/../../y"}, "rbee model get: "},
		{[]string{"--queen-url", "ftp://x", "status"}, `rbee status: queen URL "ftp://x": want http:// or https:// (see rbee status --help)`},
		{[]string{"help", "nope"}, `rbee help: unknown command "nope"`},
	} {
		r := run(t, nil, nil, c.args...)
		first, _, _ := strings.Cut(r.stderr, "\n")
		ok := first == c.first || strings.HasSuffix(c.first, ": ") && strings.HasPrefix(first, c.first)
		if r.code != exitUsage || !ok || r.stdout != "" {
			t.Errorf("%q: exit %d, first line %q, want 2 and %q\n%s", c.args, r.code, first, c.first, r.stderr)
		}
	}
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	r := run(t, nil, nil, "infer", "-m", missing, "hi")
	if want := "rbee: model file " + missing + " does not exist\n"; r.code != exitFailure || r.stderr != want {
		t.Errorf("a failure: exit %d, stderr %q, want 1 and %q", r.code, r.stderr, want)
	}
}
