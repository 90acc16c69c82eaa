package queen

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// prepareInfer checks an infer operation; its job goes the way of every
// request (route) and relays what the worker sends into the job.
func (s *Server) prepareInfer(op wire.Operation) (jobs.RunFunc, error) {
	if err := checkModel(op.Model); err != nil {
		return nil, err
	}
	if op.Prompt == "" {
		return nil, wire.BadRequest("prompt is required")
	}
	req := op.InferenceRequest
	if err := req.Validate(); err != nil {
		return nil, wire.BadRequest("%v", err)
	}
	for _, v := range []struct{ field, value string }{{"hive_id", op.HiveID}, {"worker_id", op.WorkerID}} {
		if v.value == "" {
			continue
		}
		if err := workers.CheckName(v.field, v.value); err != nil {
			return nil, wire.BadRequest("%v", err)
		}
	}
	return func(j *jobs.Job) error {
		// A client that stops reading does not want the tokens: stop the
		// generation rather than burn the worker on it.
		j.CancelWhenUnwatched()
		r := &routed{
			Request: Request{Model: op.Model, HiveID: op.HiveID, WorkerID: op.WorkerID, Inference: req},
			filter:  workers.Filter{Models: modelNames(op.Model), HiveID: op.HiveID, WorkerID: op.WorkerID},
			place:   placeAny,
			say: func(e wire.Event) {
				if e.Type == wire.TypeNarration && e.Actor == Actor && e.JobID == "" {
					e.JobID = j.ID()
				}
				j.Emit(e)
			},
			nowhere: func() error { return s.noWorker(op) },
		}
		if op.WorkerID != "" {
			r.place = placeNever
		}
		_, err := s.route(j.Context(), r, func(e wire.Event) error {
			j.Emit(e)
			return nil
		})
		return err
	}, nil
}

// noWorker explains why no worker matches and how to get one. The keeper
// starts one when it sees this code.
func (s *Server) noWorker(op wire.Operation) error {
	spawn := "rbee worker spawn -m " + op.Model
	if op.HiveID != "" {
		spawn += " --hive " + op.HiveID
	}
	var others []string
	names := modelNames(op.Model)
	for _, w := range s.workers.List() {
		if slices.Contains(names, w.Model) {
			others = append(others, fmt.Sprintf("%s on %s is %s", w.WorkerID, w.HiveID, w.State))
		}
	}
	msg := fmt.Sprintf("no worker serves model %q", op.Model)
	switch {
	case op.WorkerID != "":
		msg = fmt.Sprintf("worker %q does not serve model %q or is not ready", op.WorkerID, op.Model)
	case op.HiveID != "":
		msg += " on hive " + op.HiveID
	}
	if len(others) > 0 {
		msg += " (" + strings.Join(others, "; ") + ")"
	}
	if op.WorkerID == "" {
		msg += ", and no live hive has it in its catalog or can get it"
	}
	return wire.Errorf(wire.CodeNoWorker, "%s; start one with: %s", msg, spawn)
}
