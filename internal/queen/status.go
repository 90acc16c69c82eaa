package queen

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// runStatus answers hives, workers and models at a glance. Hives are asked
// at once and each with a timeout, so one slow hive cannot stall it.
func (s *Server) runStatus(j *jobs.Job) error {
	ctx := j.Context()
	hives, err := s.opt.Hives()
	if err != nil {
		return fmt.Errorf("reading the hive list: %w", err)
	}
	st := wire.Status{
		Queen:   wire.QueenStatus{URL: s.opt.URL},
		Hives:   s.probeAll(ctx, hives),
		Workers: s.workerStatus(),
		Models:  []wire.HiveModel{},
		Queues:  s.queue.status(),
	}

	models := make([][]wire.HiveModel, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		if st.Hives[i].State != wire.HiveOnline {
			continue
		}
		wg.Go(func() {
			ms, err := s.hiveModels(ctx, h)
			if err != nil {
				j.Narrate("status", fmt.Sprintf("Hive %s: cannot list its models: %v", h.Alias, err))
			}
			models[i] = ms
		})
	}
	wg.Wait()
	for _, ms := range models {
		st.Models = append(st.Models, ms...)
	}
	j.Emit(wire.NewResult(st))
	return nil
}

func (s *Server) hiveModels(ctx context.Context, h config.Hive) ([]wire.HiveModel, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*s.opt.HealthTimeout)
	defer cancel()
	ev, err := s.runOnHive(ctx, h, wire.Operation{Operation: wire.OpModelList}, nil)
	if err != nil {
		return nil, err
	}
	var infos []wire.ModelInfo
	if err := json.Unmarshal(ev.Data, &infos); err != nil {
		return nil, fmt.Errorf("malformed model list: %v", err)
	}
	out := make([]wire.HiveModel, len(infos))
	for i, m := range infos {
		out[i] = wire.HiveModel{HiveID: h.Alias, ModelInfo: m}
	}
	return out, nil
}

func (s *Server) workerStatus() []wire.WorkerStatus {
	now := time.Now()
	list := s.workers.List()
	out := make([]wire.WorkerStatus, len(list))
	for i, w := range list {
		out[i] = wire.WorkerStatus{
			WorkerID: w.WorkerID, HiveID: w.HiveID, Model: w.Model, URL: w.URL, State: w.State,
			Slots: w.Slots, Active: w.Active, QueueLen: w.QueueLen,
			LastSeenMs: now.Sub(w.LastSeen).Milliseconds(),
			Device:     w.Device, PID: w.PID, GoneReason: w.GoneReason,
			GPUUse: w.GPUUse,
		}
	}
	return out
}
