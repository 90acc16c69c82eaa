package queen

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen/scheduling"
	"github.com/rbee/rbee/internal/queen/workers"
	"github.com/rbee/rbee/internal/wire"
)

// prepareInfer checks an infer operation; its job goes the way of every
// request (scheduling's Route) and relays what the worker sends into the
// job.
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
	if op.HiveID != "" {
		if err := wire.CheckHiveID(op.HiveID); err != nil {
			return nil, wire.BadRequest("hive_id: %v", err)
		}
	}
	if op.WorkerID != "" {
		if err := wire.CheckWorkerID(op.WorkerID); err != nil {
			return nil, wire.BadRequest("worker_id: %v", err)
		}
	}
	return func(j *jobs.Job) error {
		// A client that stops reading does not want the tokens: stop the
		// generation rather than burn the worker on it.
		j.CancelWhenUnwatched()
		r := &scheduling.Routed{
			Request: Request{Model: op.Model, HiveID: op.HiveID, WorkerID: op.WorkerID, Inference: req},
			Filter:  workers.Filter{Models: modelNames(op.Model), HiveID: op.HiveID, WorkerID: op.WorkerID},
			Place:   scheduling.PlaceAny,
			Say: func(e wire.Event) {
				if e.Type == wire.TypeNarration && e.Actor == Actor && e.JobID == "" {
					e.JobID = j.ID()
				}
				j.Emit(e)
			},
			Nowhere: func() error { return s.noWorker(op) },
		}
		if op.WorkerID != "" {
			r.Place = scheduling.PlaceNever
		}
		_, err := s.sched.Route(j.Context(), r, func(e wire.Event) error {
			j.Emit(e)
			return nil
		})
		return err
	}, nil
}

// Generate runs one inference request on a worker of model, without a job:
// it is the OpenAI API's way in (openai.Backend). fn gets each token event
// and then the end event; its error stops the generation. It goes the way
// of every request (scheduling's Route); a model no worker serves is
// started only from a catalog id, shared by every request that waits for
// it. When ctx ends, the generation is stopped on the worker at once.
func (s *Server) Generate(ctx context.Context, model string, req wire.InferenceRequest, fn func(wire.Event) error) (wire.Event, error) {
	if err := req.Validate(); err != nil {
		return wire.Event{}, wire.BadRequest("%v", err)
	}
	r := &scheduling.Routed{
		Request: Request{Model: model, Inference: req},
		// Exactly the names /v1/models lists: what a worker reports serving.
		Filter: workers.Filter{Models: []string{model}},
		Place:  scheduling.PlaceCatalog,
		Nowhere: func() error {
			return wire.Errorf(wire.CodeUnknownModel, "no worker serves model %.128q and no live hive has it in its catalog", model)
		},
	}
	if wire.CheckModelID(model) != nil {
		r.Nowhere = func() error {
			return wire.Errorf(wire.CodeUnknownModel, "no worker serves model %.128q, and only a catalog id can start one", model)
		}
	}
	return s.sched.Route(ctx, r, fn)
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
