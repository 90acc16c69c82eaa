package hive

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// A named pipe named like a model used to hang model_download's import for
// ever (blocked opening it), and the hive's stop behind it. A path that is
// no regular file is now a 400 before any job exists, for model_download
// and worker_spawn alike; nothing is recorded or spawned, and the hive
// stops as usual afterwards.
func TestSpecialFilesRefused(t *testing.T) {
	h := startHive(t)
	for kind, path := range testkit.SpecialFiles(t, h.models) {
		for _, op := range []wire.Operation{
			{Operation: wire.OpModelDownload, Model: path},
			spawnOp(path),
		} {
			re := h.submit(t, op)
			if re == nil || re.Status != http.StatusBadRequest || re.Code != wire.CodeBadRequest ||
				re.Message != path+" is a "+kind+", not a regular file" {
				t.Errorf("%s of a %s: %+v, want a 400 naming it", op.Operation, kind, re)
			}
		}
	}
	if models := result[[]wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelList}); len(models) != 0 {
		t.Fatalf("model_list = %+v", models)
	}
	if workers := result[[]wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerList}); len(workers) != 0 {
		t.Fatalf("worker_list = %+v", workers)
	}
	if err := h.stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// What the catalog says of a special file (one swapped in after the
// dispatch checked it) is a bad_request too, not a broken model.
func TestCatalogErrorOfSpecialFile(t *testing.T) {
	cfg, ln, dir := testConfig(t)
	h := serveHive(t, cfg, ln, dir).hive
	for kind, path := range testkit.SpecialFiles(t, t.TempDir()) {
		_, err := h.cat.Import(path)
		if re, ok := wire.AsError(h.catalogError(err)); !ok || re.Code != wire.CodeBadRequest || !strings.Contains(re.Message, kind) {
			t.Errorf("%s: %v", kind, h.catalogError(err))
		}
	}
}
