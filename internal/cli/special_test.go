package cli

import (
	"testing"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
)

// A model path that names a named pipe, a device, a directory or a socket
// is refused by rbee itself, for the local hive, with one line and status
// 1, before anything is sent or opened for reading.
func TestSpecialModelFilesRefused(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	q := newFakeQueen(t, map[string]func(*jobs.Job, int) error{})
	for kind, path := range testkit.SpecialFiles(t, dir) {
		for _, args := range [][]string{
			{"infer", "-m", path, "hi"},
			{"model", "download", path},
			{"worker", "spawn", "-m", path},
		} {
			done := make(chan result, 1)
			go func() { done <- run(t, &App{Dir: dir}, nil, args...) }()
			r := testkit.Receive(t, "rbee "+args[0], done)
			want := "rbee: " + path + " is a " + kind + ", not a regular file\n"
			if r.code != exitFailure || r.stderr != want || r.stdout != "" {
				t.Errorf("%q: exit %d, stderr %q, want %q", args, r.code, r.stderr, want)
			}
		}
	}
	if ops := q.opNames(); len(ops) != 0 {
		t.Fatalf("operations sent: %v", ops)
	}
}
