// Package placement decides where a worker for a model starts when none
// serves it (which live hive has the model or can get it, on which device
// there is room) and starts it there, trying the next place when a start
// fails.
package placement

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/wire"
)

// ErrNowhere says that no live hive has the model or can get it: the
// caller says so in its own terms (no_worker for the job protocol, a 404
// for the API).
var ErrNowhere = errors.New("no live hive has the model")

// Options configures a Placer.
type Options struct {
	Fleet *fleet.Fleet
	// StartedNote tells a person how long a started worker stays (its
	// keep_alive); it ends the narration of a start.
	StartedNote string
	Logger      *slog.Logger
}

// Placer places and starts workers.
type Placer struct {
	opt   Options
	fleet *fleet.Fleet
	log   *slog.Logger
}

// New returns a Placer.
func New(opt Options) *Placer {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Placer{opt: opt, fleet: opt.Fleet, log: opt.Logger}
}

// want is a model a worker must be started for.
type want struct {
	model string // as the client named it: catalog id, path or hf: reference
	ref   modelref.Ref
	hive  string // only on this hive; empty: any
}

// placement is one way to start a worker for a model.
type placement struct {
	hive   config.Hive
	device string // "" (the CPU) or a GPU of the hive, "cuda:N"
	spawn  string // what worker_spawn is sent: the catalog id when the hive has the model
	need   uint64 // the catalog's memory estimate; 0: unknown (not downloaded yet)
	free   uint64 // the hive's free RAM, or the GPU's free memory; 0: unknown
}

func (p placement) String() string {
	if p.device == "" {
		return "hive " + p.hive.Alias
	}
	return fmt.Sprintf("hive %s (%s)", p.hive.Alias, p.device)
}

// hiveOffer is what one live hive says about a model.
type hiveOffer struct {
	hive  config.Hive
	entry *wire.ModelInfo // its catalog entry; nil: not in its catalog
	caps  *wire.HiveCapabilities
}

// placements lists where a worker for w could start, best first: on a GPU
// whose free memory holds the catalog's estimate for the model (most free
// first), then on the CPU of a hive whose free RAM holds it (most free
// first). A hive qualifies when its catalog has the model, or, for an hf:
// reference, when it can download it (its size is unknown until then, so
// only the hive's own checks apply), or, for a path, when it is the hive
// the request names (the local one by default), which imports the file.
// Numbers a hive does not report (RAM 0) do not rule it out. It returns
// ErrNowhere when no live hive qualifies, and an unavailable error naming
// each hive's free memory when none has room.
func (p *Placer) placements(ctx context.Context, w want) ([]placement, error) {
	offers, err := p.offers(ctx, w)
	if err != nil {
		return nil, err
	}
	var gpu, cpu []placement
	var short []string
	for _, o := range offers {
		pl := placement{hive: o.hive, spawn: w.model}
		switch {
		case o.entry != nil && w.ref.Kind != modelref.KindPath:
			pl.spawn, pl.need = o.entry.ID, needs(*o.entry)
		case o.entry != nil:
			pl.need = needs(*o.entry)
		}
		fits := func(free uint64) bool { return free == 0 || pl.need == 0 || free >= pl.need }
		var room []string
		if o.caps != nil {
			for _, g := range o.caps.GPUs {
				if g.Device == "" || !validDevice(g.Device) {
					continue
				}
				if fits(g.MemoryFreeBytes) {
					q := pl
					q.device, q.free = g.Device, g.MemoryFreeBytes
					gpu = append(gpu, q)
				} else {
					room = append(room, fmt.Sprintf("%s %d MiB", g.Device, g.MemoryFreeBytes>>20))
				}
			}
			pl.free = o.caps.RAMFreeBytes
		}
		if fits(pl.free) {
			cpu = append(cpu, pl)
			continue
		}
		room = append(room, fmt.Sprintf("RAM %d MiB", pl.free>>20))
		short = append(short, fmt.Sprintf("%s has %s free", o.hive.Alias, strings.Join(room, ", ")))
	}
	byFree := func(a, b placement) int {
		return cmp.Or(cmp.Compare(b.free, a.free), cmp.Compare(a.hive.Alias, b.hive.Alias), cmp.Compare(a.device, b.device))
	}
	slices.SortStableFunc(gpu, byFree)
	slices.SortStableFunc(cpu, byFree)
	out := append(gpu, cpu...)
	if len(out) == 0 {
		need := uint64(0)
		for _, o := range offers {
			if o.entry != nil {
				need = max(need, needs(*o.entry))
			}
		}
		return nil, wire.Errorf(wire.CodeUnavailable, "no hive has room for model %s (about %d MiB): %s", w.model, need>>20, strings.Join(short, "; "))
	}
	return out, nil
}

// offers asks every live hive that may serve w for its catalog entry of
// the model and its capabilities, at once.
func (p *Placer) offers(ctx context.Context, w want) ([]hiveOffer, error) {
	var hives []config.Hive
	if w.hive != "" {
		h, err := p.fleet.Find(w.hive, "hive_id")
		if err != nil {
			// A hive that is not configured serves nothing.
			p.log.Debug("no placement on an unknown hive", "hive", w.hive, "err", err)
			return nil, ErrNowhere
		}
		hives = []config.Hive{h}
	} else {
		all, err := p.fleet.List()
		if err != nil {
			return nil, err
		}
		hives = all
	}
	sts := p.fleet.ProbeAll(ctx, hives)
	found := make([]*hiveOffer, len(hives))
	var wg sync.WaitGroup
	for i, h := range hives {
		if sts[i].State != wire.HiveOnline {
			continue
		}
		wg.Go(func() {
			ms, err := p.fleet.Models(ctx, h)
			if err != nil {
				p.log.Warn("cannot list a hive's models for a placement", "hive", h.Alias, "err", err)
				return
			}
			o := &hiveOffer{hive: h}
			if k := slices.IndexFunc(ms, func(m wire.HiveModel) bool { return m.ID == w.ref.ID }); k >= 0 {
				o.entry = &ms[k].ModelInfo
			}
			if w.ref.Kind == modelref.KindPath && o.entry != nil && o.entry.Path != w.ref.Path {
				o.entry = nil // another file under the same id: the path's own is unknown
			}
			if o.entry == nil && !canGet(w, h) {
				return
			}
			if caps, err := p.fleet.Capabilities(ctx, h); err == nil {
				o.caps = caps
			}
			found[i] = o
		})
	}
	wg.Wait()
	var out []hiveOffer
	for _, o := range found {
		if o != nil {
			out = append(out, *o)
		}
	}
	if len(out) == 0 {
		return nil, ErrNowhere
	}
	return out, nil
}

// canGet reports whether hive h can get a model its catalog lacks: it
// downloads an hf: reference, and imports a path when it is the hive the
// request is for (a path means a file on one machine).
func canGet(w want, h config.Hive) bool {
	switch w.ref.Kind {
	case modelref.KindHF:
		return true
	case modelref.KindPath:
		return h.Alias == cmp.Or(w.hive, fleet.LocalAlias)
	}
	return false
}

// needs is the memory a worker of m needs: the catalog's estimate, else
// the file's size, which is loaded whole, so the least it can be.
func needs(m wire.ModelInfo) uint64 {
	if m.MemoryBytes > 0 {
		return m.MemoryBytes
	}
	return uint64(max(m.SizeBytes, 0))
}

// validDevice reports whether a worker may be asked to run on d: the
// hive and the worker parse device names with the same package.
func validDevice(d string) bool {
	_, err := device.Parse(d)
	return err == nil
}
