package queen

import (
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// runStatus answers hives, workers and models at a glance. Hives are asked
// at once and each with a timeout, so one slow hive cannot stall it.
func (s *Server) runStatus(j *jobs.Job) error {
	ctx := j.Context()
	hives, err := s.fleet.List()
	if err != nil {
		return err
	}
	st := wire.Status{
		Queen:   wire.QueenStatus{URL: s.opt.URL},
		Hives:   s.fleet.ProbeAll(ctx, hives),
		Workers: s.workerStatus(),
		Models:  []wire.HiveModel{},
		Queues:  s.sched.QueueStatus(),
	}

	models := make([][]wire.HiveModel, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		if st.Hives[i].State != wire.HiveOnline {
			continue
		}
		wg.Go(func() {
			ms, err := s.fleet.Models(ctx, h)
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
			GPUUse: w.GPUUse, Cache: w.Cache,
		}
	}
	return out
}
