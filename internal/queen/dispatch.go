package queen

import (
	"strings"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/wire"
)

var knownOps = []string{
	wire.OpStatus, wire.OpInfer,
	wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop,
	wire.OpHiveList, wire.OpHiveGet, wire.OpHiveStatus, wire.OpHiveRefreshCapabilities,
	wire.OpWorkerSpawn, wire.OpWorkerStop, wire.OpWorkerGet, wire.OpWorkerDelete, wire.OpWorkerList,
	wire.OpModelDownload, wire.OpModelList, wire.OpModelGet, wire.OpModelDelete,
}

// dispatch validates an operation and picks what runs it. Everything wrong
// with the request itself is a 400 here, before any job exists.
func (s *Server) dispatch(op wire.Operation) (jobs.RunFunc, error) {
	switch op.Operation {
	case wire.OpStatus:
		return s.runStatus, nil
	case wire.OpInfer:
		return s.prepareInfer(op)
	case wire.OpHiveList:
		return s.fleet.ListHives, nil
	case wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop,
		wire.OpHiveGet, wire.OpHiveStatus, wire.OpHiveRefreshCapabilities:
		h, err := s.fleet.Find(op.Alias, "alias")
		if err != nil {
			return nil, err
		}
		if !h.IsLocal() && fleet.IsLifecycle(op.Operation) {
			return s.remote.Op(op, h), nil
		}
		return s.fleet.HiveOp(op.Operation, h), nil
	case wire.OpWorkerSpawn:
		if err := checkModel(op.Model); err != nil {
			return nil, err
		}
		if _, err := device.Parse(op.Device); op.Device != "" && err != nil {
			return nil, wire.BadRequest("%v", err)
		}
		return s.forwardTo(op, op.HiveID)
	case wire.OpWorkerGet, wire.OpWorkerStop, wire.OpWorkerDelete:
		if err := wire.CheckWorkerID(op.WorkerID); err != nil {
			return nil, wire.BadRequest("worker_id: %v", err)
		}
		alias := op.HiveID
		if alias == "" {
			// The registry knows where a worker lives, so a person need
			// not repeat the hive of a worker they see in status.
			if w, ok := s.workers.Get(op.WorkerID); ok {
				alias = w.HiveID
			}
		}
		return s.forwardTo(op, alias)
	case wire.OpWorkerList, wire.OpModelList:
		if op.HiveID == "" {
			return s.fleet.ForwardAll(op), nil
		}
		return s.forwardTo(op, op.HiveID)
	case wire.OpModelDownload, wire.OpModelGet, wire.OpModelDelete:
		if err := checkModel(op.Model); err != nil {
			return nil, err
		}
		return s.forwardTo(op, op.HiveID)
	case "":
		return nil, wire.BadRequest("operation is required; known operations: %s", strings.Join(knownOps, ", "))
	}
	return nil, wire.BadRequest("unknown operation %.64q; known operations: %s", op.Operation, strings.Join(knownOps, ", "))
}

func (s *Server) forwardTo(op wire.Operation, alias string) (jobs.RunFunc, error) {
	h, err := s.fleet.Find(alias, "hive_id")
	if err != nil {
		return nil, err
	}
	return s.fleet.Forward(h, op), nil
}

// checkModel checks a model reference: a catalog id, a path or an hf:
// reference (modelref.Parse checks a catalog id with wire.CheckModelID).
func checkModel(model string) error {
	if model == "" {
		return wire.BadRequest("model is required: a catalog id, a path to a .gguf file, or hf:owner/repo[:file.gguf]")
	}
	if _, err := modelref.Parse(model); err != nil {
		return wire.BadRequest("model: %v", err)
	}
	return nil
}

// modelNames are the names a worker serving model may report: its catalog
// id, or the reference as given when a worker was started by hand.
func modelNames(model string) []string {
	ref, err := modelref.Parse(model)
	if err != nil || ref.ID == model {
		return []string{model}
	}
	return []string{ref.ID, model}
}
