package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/wire"
)

// Start starts a worker for model (only on hive, when set) on the first
// placement that takes it (see placements), trying the next when a start
// fails. It narrates into j and emit; ErrNowhere when no live hive has the
// model or can get it.
func (p *Placer) Start(ctx context.Context, j *jobs.Job, model, hive string, emit func(wire.Event)) error {
	ref, err := modelref.Parse(model)
	if err != nil {
		return ErrNowhere
	}
	w := want{model: model, ref: ref, hive: hive}
	places, err := p.placements(ctx, w)
	if err != nil {
		return err
	}
	say := func(action, human string, hive string) {
		n := j.Narration(action, human)
		n.HiveID = hive
		emit(wire.Event{Type: wire.TypeNarration, Actor: n.Actor, Action: n.Action, Human: n.Human, JobID: n.JobID, HiveID: n.HiveID})
	}
	var errs []error
	for i, pl := range places {
		if i == 0 {
			say("spawn", fmt.Sprintf("No worker serves %s yet; starting one on %s", w.model, pl), pl.hive.Alias)
		} else {
			say("spawn", fmt.Sprintf("Trying %s for %s instead", pl, w.model), pl.hive.Alias)
		}
		op := wire.Operation{Operation: wire.OpWorkerSpawn, Model: pl.spawn, Device: pl.device}
		ev, err := p.fleet.Run(ctx, pl.hive, op, func(e wire.Event) error {
			if !e.Terminal() {
				emit(fleet.TagHive(e, pl.hive.Alias))
			}
			return nil
		})
		if err == nil {
			j.Emit(ev)
			var wi wire.WorkerInfo
			_ = json.Unmarshal(ev.Data, &wi)
			// Only in this job: each request says so itself when it gets
			// the worker, which may be before this answer comes.
			j.Narrate("spawn", fmt.Sprintf("Worker %s started on %s for %s; %s", wi.WorkerID, pl, w.model, p.opt.StartedNote))
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		p.log.Warn("starting a worker failed", "model", w.model, "hive", pl.hive.Alias, "device", pl.device, "err", err)
		say("spawn", fmt.Sprintf("Starting a worker on %s failed: %v", pl, err), pl.hive.Alias)
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return wire.Errorf(wire.CodeWorkerFailed, "no hive could start a worker for %s: %v", w.model, errors.Join(errs...))
}
