package hive

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/catalog"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/wire"
)

// Operations is what a hive handles, in the order its error messages list
// them.
var Operations = []string{
	wire.OpWorkerSpawn, wire.OpWorkerList, wire.OpWorkerGet, wire.OpWorkerStop, wire.OpWorkerDelete,
	wire.OpModelDownload, wire.OpModelList, wire.OpModelGet, wire.OpModelDelete,
}

// dispatch validates an operation before any job exists: a malformed one
// is a 400 and nothing runs.
func (h *Hive) dispatch(op wire.Operation) (jobs.RunFunc, error) {
	if op.HiveID != "" {
		if err := wire.CheckHiveID(op.HiveID); err != nil {
			return nil, wire.BadRequest("hive_id: %v", err)
		}
	}
	switch op.Operation {
	case wire.OpInfer:
		return nil, wire.BadRequest("rbee-hive does not run inference: inference goes from the queen straight to a worker, never through a hive; send infer to queen-rbee")
	case "":
		return nil, wire.BadRequest("the operation is missing; a hive handles %s", strings.Join(Operations, ", "))

	case wire.OpWorkerSpawn:
		ref, err := spawnModel(op.Model)
		if err != nil {
			return nil, err
		}
		device, err := h.spawnDevice(context.Background(), op.Device)
		if err != nil {
			return nil, err
		}
		return func(j *jobs.Job) error { return h.runSpawn(j, ref, device) }, nil
	case wire.OpWorkerList:
		return h.runWorkerList, nil
	case wire.OpWorkerGet, wire.OpWorkerStop, wire.OpWorkerDelete:
		if err := wire.CheckWorkerID(op.WorkerID); err != nil {
			return nil, wire.BadRequest("%s needs a worker_id: %v", op.Operation, err)
		}
		return func(j *jobs.Job) error { return h.runWorker(j, op.Operation, op.WorkerID) }, nil

	case wire.OpModelList:
		return func(j *jobs.Job) error {
			j.Emit(wire.NewResult(h.cat.List()))
			return nil
		}, nil
	case wire.OpModelDownload, wire.OpModelGet, wire.OpModelDelete:
		if op.Model == "" {
			return nil, wire.BadRequest("%s needs a model", op.Operation)
		}
		ref, err := modelref.Parse(op.Model)
		if err != nil {
			return nil, wire.BadRequest("%v", err)
		}
		if ref.Kind == modelref.KindPath && !filepath.IsAbs(ref.Path) {
			return nil, relativePath(ref.Path)
		}
		if op.Operation == wire.OpModelDownload {
			if err := checkModelFile(ref); err != nil {
				return nil, err
			}
		}
		switch op.Operation {
		case wire.OpModelDownload:
			return func(j *jobs.Job) error { return h.runDownload(j, ref) }, nil
		case wire.OpModelGet:
			return func(j *jobs.Job) error {
				info, err := h.cat.Get(ref.ID)
				if err != nil {
					return h.catalogError(err)
				}
				j.Emit(wire.NewResult(info))
				return nil
			}, nil
		default:
			return func(j *jobs.Job) error { return h.runModelDelete(j, ref.ID, op.Force) }, nil
		}
	}
	return nil, wire.BadRequest("unknown operation %.64q; a hive handles %s", op.Operation, strings.Join(Operations, ", "))
}

// spawnModel validates worker_spawn's model: a catalog id, an absolute
// path to a .gguf file that the spawn imports first, or an hf: reference
// that the spawn downloads first.
func spawnModel(model string) (modelref.Ref, error) {
	if model == "" {
		return modelref.Ref{}, wire.BadRequest("worker_spawn needs a model: a catalog id or an absolute path to a .gguf file")
	}
	ref, err := modelref.Parse(model)
	if err != nil {
		return modelref.Ref{}, wire.BadRequest("%v", err)
	}
	if ref.Kind == modelref.KindPath && !filepath.IsAbs(ref.Path) {
		return modelref.Ref{}, relativePath(ref.Path)
	}
	return ref, checkModelFile(ref)
}

// checkModelFile refuses, before any job exists, a path that names a named
// pipe, a device, a directory or a socket: the client's mistake, a 400. The
// open cannot block (gguf.Open). Anything else wrong with the file (a
// missing file, not GGUF) is the import's to say, in the job.
func checkModelFile(ref modelref.Ref) error {
	if ref.Kind != modelref.KindPath {
		return nil
	}
	f, _, err := gguf.Open(ref.Path)
	if errors.Is(err, gguf.ErrNotRegular) {
		return wire.BadRequest("%v", err)
	}
	if err == nil {
		f.Close()
	}
	return nil
}

func relativePath(p string) error {
	return wire.BadRequest("model path %.64q is not absolute: the hive does not know your working directory (rbee makes paths absolute)", p)
}

func (h *Hive) runSpawn(j *jobs.Job, ref modelref.Ref, device string) error {
	var (
		info wire.ModelInfo
		err  error
	)
	switch ref.Kind {
	case modelref.KindPath:
		h.narrate(j, "", "model_import", "checking and importing "+ref.Path)
		info, err = h.cat.Import(ref.Path)
	case modelref.KindHF:
		info, err = h.fetchHF(j, ref)
	default:
		info, err = h.cat.Get(ref.ID)
		if errors.Is(err, catalog.ErrNotFound) {
			return wire.Errorf(wire.CodeUnknownModel, "hive %s has no model %q; spawn with a path to a .gguf file or hf:owner/repo[:file.gguf], or get one with: rbee model download /path/to/model.gguf",
				h.cfg.HiveID, ref.ID)
		}
	}
	if err != nil {
		return h.catalogError(err)
	}
	return h.spawn(j, info, device)
}

func (h *Hive) runWorkerList(j *jobs.Job) error {
	j.Emit(wire.NewResult(h.listInfo(j.Context())))
	return nil
}

func (h *Hive) runWorker(j *jobs.Job, op, id string) error {
	w, ok := h.workers.get(id)
	if !ok {
		return wire.Errorf(wire.CodeNotFound, "hive %s has no worker %q", h.cfg.HiveID, id)
	}
	if op == wire.OpWorkerGet {
		j.Emit(wire.NewResult(h.refresh(j.Context(), w)))
		return nil
	}
	h.narrate(j, id, "worker_stop", fmt.Sprintf("stopping worker %s (pid %d)", id, w.proc.PID()))
	info := h.stop(w)
	if op == wire.OpWorkerDelete {
		h.removeLog(id)
	}
	h.narrate(j, id, "worker_stopped", fmt.Sprintf("worker %s stopped", id))
	j.Emit(wire.NewResult(info))
	return nil
}

func (h *Hive) removeLog(id string) {
	if err := removeIfExists(h.workerLog(id)); err != nil {
		h.log.Warn("cannot remove a worker log", "worker_id", id, "err", err)
	}
}

func (h *Hive) runDownload(j *jobs.Job, ref modelref.Ref) error {
	switch ref.Kind {
	case modelref.KindHF:
		info, err := h.fetchHF(j, ref)
		if err != nil {
			return err
		}
		j.Emit(wire.NewResult(info))
		return nil
	case modelref.KindID:
		info, err := h.cat.Get(ref.ID)
		if err != nil {
			if errors.Is(err, catalog.ErrNotFound) {
				return wire.Errorf(wire.CodeUnknownModel, "%q is neither in the catalog nor a path to a .gguf file nor hf:owner/repo[:file.gguf]", ref.ID)
			}
			return h.catalogError(err)
		}
		h.narrate(j, "", "model_download", fmt.Sprintf("model %s is already in the catalog", info.ID))
		j.Emit(wire.NewResult(info))
		return nil
	}
	h.narrate(j, "", "model_import", "checking and importing "+ref.Path)
	info, err := h.cat.Import(ref.Path)
	if err != nil {
		return h.catalogError(err)
	}
	h.narrate(j, "", "model_imported", fmt.Sprintf("model %s (%s, %s, %d bytes) is in the catalog", info.ID, info.Architecture, info.Quantization, info.SizeBytes))
	j.Emit(wire.NewResult(info))
	return nil
}

func (h *Hive) runModelDelete(j *jobs.Job, id string, force bool) error {
	if _, err := h.cat.Get(id); err != nil {
		return h.catalogError(err)
	}
	if users := h.workers.usingModel(id); len(users) > 0 {
		ids := make([]string, len(users))
		for i, w := range users {
			ids[i] = w.id
		}
		if !force {
			return wire.Errorf(wire.CodeModelInUse, "model %s is in use by %s; stop them first, or delete with force", id, strings.Join(ids, ", "))
		}
		h.narrate(j, "", "worker_stop", fmt.Sprintf("stopping %s, which use model %s", strings.Join(ids, ", "), id))
		h.stopMany(users)
	}
	info, err := h.cat.Delete(id)
	if err != nil {
		return h.catalogError(err)
	}
	human := fmt.Sprintf("model %s is no longer in the catalog", id)
	if info.Source == catalog.SourceFile {
		human += fmt.Sprintf(" (its file %s stays where it is)", info.Path)
	}
	h.narrate(j, "", "model_deleted", human)
	j.Emit(wire.NewResult(info))
	return nil
}

// narrate tells the job's reader what happens, naming this hive and, when
// there is one, the worker concerned.
func (h *Hive) narrate(j *jobs.Job, workerID, action, human string) {
	n := j.Narration(action, human)
	n.HiveID, n.WorkerID = h.cfg.HiveID, workerID
	h.log.Debug(human, "job_id", j.ID(), "action", action, "worker_id", workerID)
	j.Emit(n)
}

// catalogError gives catalog errors the codes of the wire.
func (h *Hive) catalogError(err error) error {
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "hive %s: %v", h.cfg.HiveID, err)
	case errors.Is(err, catalog.ErrExists):
		return wire.Errorf(wire.CodeModelExists, "%v", err)
	case errors.Is(err, catalog.ErrInvalidID), errors.Is(err, catalog.ErrNotPath), errors.Is(err, gguf.ErrNotRegular):
		// A special file is the client's mistake, not a broken model.
		return wire.Errorf(wire.CodeBadRequest, "%v", err)
	case errors.Is(err, catalog.ErrBadFile):
		return wire.Errorf(wire.CodeBadModel, "%v", err)
	}
	return err
}
