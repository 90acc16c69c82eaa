package queen

import (
	"strings"

	"github.com/rbee/rbee/internal/device"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// localAlias is the hive on this machine, always present in hives.conf.
const localAlias = "localhost"

var knownOps = []string{
	wire.OpStatus, wire.OpInfer,
	wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop,
	wire.OpHiveList, wire.OpHiveGet, wire.OpHiveStatus, wire.OpHiveRefreshCapabilities,
	wire.OpWorkerSpawn, wire.OpWorkerStop, wire.OpWorkerGet, wire.OpWorkerDelete, wire.OpWorkerList,
	wire.OpModelDownload, wire.OpModelList, wire.OpModelGet, wire.OpModelDelete,
}

// validDevice reports whether a worker may be asked to run on d: the
// hive and the worker parse device names with the same package.
func validDevice(d string) bool {
	_, err := device.Parse(d)
	return err == nil
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
		return s.runHiveList, nil
	case wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop,
		wire.OpHiveGet, wire.OpHiveStatus, wire.OpHiveRefreshCapabilities:
		h, err := s.hive(op.Alias, "alias")
		if err != nil {
			return nil, err
		}
		if !h.IsLocal() && isLifecycle(op.Operation) {
			return s.remoteHiveOp(op, h), nil
		}
		return s.hiveOp(op.Operation, h), nil
	case wire.OpWorkerSpawn:
		if err := checkModel(op.Model); err != nil {
			return nil, err
		}
		if _, err := device.Parse(op.Device); op.Device != "" && err != nil {
			return nil, wire.BadRequest("%v", err)
		}
		return s.forwardTo(op, op.HiveID)
	case wire.OpWorkerGet, wire.OpWorkerStop, wire.OpWorkerDelete:
		if err := workers.CheckName("worker_id", op.WorkerID); err != nil {
			return nil, wire.BadRequest("%v", err)
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
			return s.forwardAll(op), nil
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
	h, err := s.hive(alias, "hive_id")
	if err != nil {
		return nil, err
	}
	return s.forward(h, op), nil
}

// hive finds a configured hive; an empty alias is the local one.
func (s *Server) hive(alias, field string) (config.Hive, error) {
	if alias == "" {
		alias = localAlias
	}
	if !config.ValidAlias(alias) {
		return config.Hive{}, wire.BadRequest("%s %.64q is not a hive alias: use letters, digits, '.', '_' and '-'", field, alias)
	}
	hives, err := s.opt.Hives()
	if err != nil {
		return config.Hive{}, wire.Errorf(wire.CodeInternal, "reading the hive list: %v", err)
	}
	h, ok := config.FindHive(hives, alias)
	if !ok {
		// ~/.ssh/config names hosts too; its values get the same checks.
		sh, found, err := s.opt.SSHConfigHive(alias)
		if err != nil {
			return config.Hive{}, wire.BadRequest("hive %s: %v", alias, err)
		}
		h, ok = sh, found
	}
	if !ok {
		names := make([]string, len(hives))
		for i, h := range hives {
			names[i] = h.Alias
		}
		return config.Hive{}, wire.Errorf(wire.CodeBadRequest,
			"unknown hive %q: the configured hives are %s; add a \"Host %s\" entry to hives.conf (or ~/.ssh/config)", alias, strings.Join(names, ", "), alias)
	}
	return h, nil
}

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

// isLifecycle reports whether op installs, starts, stops or uninstalls a
// hive: what takes SSH for a hive on another machine.
func isLifecycle(op string) bool {
	switch op {
	case wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop:
		return true
	}
	return false
}
