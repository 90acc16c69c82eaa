package hive

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func TestModelDeleteInUse(t *testing.T) {
	h := startHive(t)
	path := h.model(t, "alpha")
	info := result[wire.WorkerInfo](t, h, spawnOp(path))

	del := wire.Operation{Operation: wire.OpModelDelete, Model: "alpha"}
	re := failure(t, h, del)
	if re.Code != wire.CodeModelInUse || !strings.Contains(re.Message, info.WorkerID) {
		t.Fatalf("model_delete in use: %+v", re)
	}
	if !alive(info.PID) {
		t.Fatal("a refused delete stopped the worker")
	}
	del.Force = true
	deleted := result[wire.ModelInfo](t, h, del)
	if deleted.ID != "alpha" {
		t.Fatalf("model_delete = %+v", deleted)
	}
	waitGone(t, info.PID)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("model_delete removed the user's file: %v", err)
	}
	if models := result[[]wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelList}); len(models) != 0 {
		t.Fatalf("model_list = %+v", models)
	}
	if re := failure(t, h, wire.Operation{Operation: wire.OpModelGet, Model: "alpha"}); re.Code != wire.CodeNotFound {
		t.Fatalf("model_get after delete: %+v", re)
	}
}

func TestModelDownload(t *testing.T) {
	h := startHive(t)
	path := h.model(t, "gamma")
	info := result[wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelDownload, Model: path})
	if info.ID != "gamma" || info.Path != path || info.Architecture != "llama" || info.Source != "file" {
		t.Fatalf("model_download = %+v", info)
	}
	got := result[wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelGet, Model: "gamma"})
	if got.ID != "gamma" {
		t.Fatalf("model_get = %+v", got)
	}
	// The path names the same entry.
	if got := result[wire.ModelInfo](t, h, wire.Operation{Operation: wire.OpModelGet, Model: path}); got.ID != "gamma" {
		t.Fatalf("model_get by path = %+v", got)
	}
	if re := failure(t, h, spawnOp("never-imported")); re.Code != wire.CodeUnknownModel ||
		!strings.Contains(re.Message, "rbee model download") {
		t.Fatalf("spawn of an unknown id: %+v", re)
	}
	notModel := filepath.Join(h.models, "notes.gguf")
	if err := os.WriteFile(notModel, []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	if re := failure(t, h, spawnOp(notModel)); re.Code != wire.CodeBadModel {
		t.Fatalf("spawn of a bad file: %+v", re)
	}
}
