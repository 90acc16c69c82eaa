package fleet

import (
	"errors"
	"fmt"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// IsLifecycle reports whether op installs, starts, stops or uninstalls a
// hive: what takes SSH for a hive on another machine.
func IsLifecycle(op string) bool {
	switch op {
	case wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop:
		return true
	}
	return false
}

// HiveOp runs the hive_* operations that name one hive: the questions
// (get, status, refresh_capabilities) of any hive, and the lifecycle of
// the local one. A remote hive's lifecycle is package remote's.
func (f *Fleet) HiveOp(name string, h config.Hive) jobs.RunFunc {
	return func(j *jobs.Job) error {
		ctx := j.Context()
		if !IsLifecycle(name) {
			st := f.Probe(ctx, h)
			if st.State == wire.HiveOnline {
				caps, err := f.Capabilities(ctx, h)
				if err != nil {
					return wire.Errorf(wire.CodeHiveUnreachable, "hive %s answers /health but not /v1/capabilities: %v", h.Alias, err)
				}
				st.Capabilities = caps
			} else if name != wire.OpHiveGet {
				// hive_get describes a hive whatever its state; the others
				// are questions only a running hive answers.
				return Unreachable(h, errors.New(st.Error))
			}
			j.Emit(wire.NewResult(st))
			return nil
		}
		if !h.IsLocal() {
			return fmt.Errorf("%s of hive %s: not an operation of the local hive", name, h.Alias)
		}
		switch name {
		case wire.OpHiveStart:
			st, err := f.Local.Start(ctx, j, h)
			if err != nil {
				return err
			}
			j.Emit(wire.NewResult(st))
		case wire.OpHiveStop:
			if err := f.Local.Stop(ctx, j, h); err != nil {
				return err
			}
			j.Emit(wire.NewResult(f.Probe(ctx, h)))
		case wire.OpHiveInstall:
			path, err := f.Local.Binary()
			if err != nil {
				return err
			}
			j.Narrate("install", "The local hive needs no install: it runs "+path)
			j.Emit(wire.NewResult(map[string]string{"alias": h.Alias, "binary": path}))
		case wire.OpHiveUninstall:
			j.Narrate("uninstall", "The local hive has nothing to uninstall: it runs the rbee-hive installed beside queen-rbee")
			j.Emit(wire.NewResult(map[string]string{"alias": h.Alias}))
		}
		return nil
	}
}

// ListHives is hive_list: every configured hive and whether it answers.
func (f *Fleet) ListHives(j *jobs.Job) error {
	hives, err := f.List()
	if err != nil {
		return err
	}
	j.Emit(wire.NewResult(f.ProbeAll(j.Context(), hives)))
	return nil
}
