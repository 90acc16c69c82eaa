package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// cancelTimeout bounds the DELETE that stops a hive's job the queen no
// longer wants.
const cancelTimeout = 2 * time.Second

// Forward runs op on hive h and relays every event of the hive's job into
// the queen's: narration, progress and the result or error that ends it.
func (f *Fleet) Forward(h config.Hive, op wire.Operation) jobs.RunFunc {
	return func(j *jobs.Job) error {
		_, err := f.Run(j.Context(), h, op, func(e wire.Event) error {
			j.Emit(TagHive(e, h.Alias))
			return nil
		})
		return err
	}
}

// Run submits op to hive h and streams its job to fn, cancelling the
// hive's job when ctx ends first. Its errors name the hive and keep the
// hive's error codes; a hive that cannot be reached is hive_unreachable
// with the command that starts it.
func (f *Fleet) Run(ctx context.Context, h config.Hive, op wire.Operation, fn func(wire.Event) error) (wire.Event, error) {
	// The hive is the one addressed; it has no use for the routing field,
	// and a hive started under another id must not refuse the operation.
	op.HiveID = ""
	c := f.Client(h)
	jc, err := c.Submit(ctx, op)
	if err != nil {
		if ctx.Err() != nil {
			return wire.Event{}, context.Cause(ctx)
		}
		return wire.Event{}, hiveError(h, err, false)
	}
	ev, err := c.Stream(ctx, jc.JobID, fn)
	if ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
		_ = c.Cancel(cctx, jc.JobID)
		cancel()
		return ev, context.Cause(ctx)
	}
	if err != nil {
		return ev, hiveError(h, err, true)
	}
	return ev, nil
}

func hiveError(h config.Hive, err error, started bool) error {
	var re *wire.Error
	if errors.As(err, &re) {
		return wire.Errorf(re.Code, "hive %s: %s", h.Alias, re.Message)
	}
	if started {
		return wire.Errorf(wire.CodeHiveUnreachable, "lost hive %s at %s mid-operation (%v); is it still running? see rbee hive status -a %s", h.Alias, URL(h), err, h.Alias)
	}
	return Unreachable(h, err)
}

// Unreachable is the error of a hive that does not answer, with the
// command that starts it.
func Unreachable(h config.Hive, err error) error {
	return wire.Errorf(wire.CodeHiveUnreachable, "hive %s at %s does not answer (%v); start it with: rbee hive start -a %s", h.Alias, URL(h), err, h.Alias)
}

// TagHive fills in which hive a relayed narration comes from.
func TagHive(e wire.Event, alias string) wire.Event {
	if e.Type == wire.TypeNarration && e.HiveID == "" {
		e.HiveID = alias
	}
	return e
}

// ForwardAll runs a list operation on every hive that answers and merges
// their lists into one result. Hives that are down are skipped: a list of
// what is running is still right without them.
func (f *Fleet) ForwardAll(op wire.Operation) jobs.RunFunc {
	return func(j *jobs.Job) error {
		ctx := j.Context()
		hives, err := f.List()
		if err != nil {
			return err
		}
		var live []config.Hive
		for i, st := range f.ProbeAll(ctx, hives) {
			if st.State == wire.HiveOnline {
				live = append(live, hives[i])
			}
		}
		if len(live) == 0 {
			j.Narrate("list", "No hive is running; start one with: rbee hive start")
			j.Emit(wire.NewResult([]any{}))
			return nil
		}

		lists := make([][]json.RawMessage, len(live))
		errs := make([]error, len(live))
		var wg sync.WaitGroup
		for i, h := range live {
			wg.Go(func() {
				ev, err := f.Run(ctx, h, op, func(e wire.Event) error {
					if !e.Terminal() {
						j.Emit(TagHive(e, h.Alias))
					}
					return nil
				})
				if err == nil {
					lists[i], err = listItems(ev, h.Alias)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}

		merged := []json.RawMessage{}
		failed := 0
		for i, h := range live {
			if errs[i] != nil {
				failed++
				j.Narrate("list", fmt.Sprintf("Hive %s: %v", h.Alias, errs[i]))
				continue
			}
			merged = append(merged, lists[i]...)
		}
		if failed == len(live) {
			return errs[0]
		}
		j.Emit(wire.NewResult(merged))
		return nil
	}
}

// listItems takes the list out of a hive's result and adds hive_id to items
// that lack it, since a merged list mixes hives.
func listItems(ev wire.Event, alias string) ([]json.RawMessage, error) {
	var items []map[string]json.RawMessage
	if len(ev.Data) == 0 || string(ev.Data) == "null" {
		return nil, nil
	}
	if err := json.Unmarshal(ev.Data, &items); err != nil {
		return nil, fmt.Errorf("hive %s answered a result that is not a list of objects: %v", alias, err)
	}
	out := make([]json.RawMessage, 0, len(items))
	id, _ := json.Marshal(alias)
	for _, it := range items {
		if _, ok := it["hive_id"]; !ok {
			it["hive_id"] = id
		}
		b, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}
