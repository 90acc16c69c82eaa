package cli

import (
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// `rbee model download hf:...` passes the reference on untouched and shows
// the hive's download progress; `model delete --force` asks for the force.
func TestModelDownloadHF(t *testing.T) {
	isolate(t)
	q := newFakeQueen(t, map[string]func(*jobs.Job, int) error{
		wire.OpModelDownload: func(j *jobs.Job, _ int) error {
			for _, done := range []int64{0, 512 << 10, 1 << 20} {
				p := wire.NewProgress(done, 1<<20, "bytes")
				p.Rate = 256 << 10
				j.Emit(p)
			}
			j.Emit(wire.NewResult(wire.ModelInfo{ID: "o--r", Source: j.Op().Model, SHA256: strings.Repeat("a", 64)}))
			return nil
		},
		wire.OpModelDelete: func(j *jobs.Job, _ int) error {
			j.Emit(wire.NewResult(wire.ModelInfo{ID: "o--r"}))
			return nil
		},
	})
	r := run(t, nil, nil, "model", "download", "hf:o/r")
	if r.code != 0 || q.op(wire.OpModelDownload).Model != "hf:o/r" || !strings.Contains(r.stdout, strings.Repeat("a", 64)) {
		t.Fatalf("exit %d, op %+v\n%s%s", r.code, q.op(wire.OpModelDownload), r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "[progress]  50%  512.0 KiB / 1.0 MiB  256.0 KiB/s, 2s left") {
		t.Errorf("progress lines:\n%s", r.stderr)
	}
	if r := run(t, nil, nil, "model", "download", "hf:o/../r"); r.code != 2 {
		t.Errorf("a bad reference: exit %d %s", r.code, r.stderr)
	}
	r = run(t, nil, nil, "model", "delete", "--force", "hf:o/r")
	if r.code != 0 || !q.op(wire.OpModelDelete).Force {
		t.Fatalf("delete --force: exit %d, op %+v %s", r.code, q.op(wire.OpModelDelete), r.stderr)
	}
}

func TestReporterRate(t *testing.T) {
	var b strings.Builder
	r := &term.Reporter{W: &b, TTY: true}
	r.Event(wire.Event{Type: wire.TypeProgress, Done: 1 << 20, Total: 3 << 20, Unit: "bytes", Rate: 1 << 20})
	if got := b.String(); !strings.Contains(got, "33%") || !strings.HasSuffix(got, "1.0 MiB/s, 2s left") {
		t.Errorf("tty progress %q", got)
	}
}
