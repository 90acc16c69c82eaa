package hive

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/wire"
)

// detectGPUs lists this machine's NVIDIA GPUs for the capabilities: none
// (not null) where there is no nvidia-smi or it fails.
func detectGPUs(ctx context.Context) []wire.GPUInfo {
	gpus, err := device.DetectNVIDIA(ctx)
	out := []wire.GPUInfo{}
	if err != nil {
		return out
	}
	for _, g := range gpus {
		out = append(out, wire.GPUInfo{
			Device:            g.Device().String(),
			Name:              g.Name,
			MemoryTotalBytes:  g.MemoryTotalBytes,
			MemoryFreeBytes:   g.MemoryFreeBytes,
			ComputeCapability: g.ComputeCapability,
		})
	}
	return out
}

// spawnDevice validates worker_spawn's device against this machine before
// a job exists: a GPU the hive does not have is a 400 that says which it
// has, rather than a worker that starts and fails.
func (h *Hive) spawnDevice(ctx context.Context, name string) (string, error) {
	if name == "" {
		return string(device.CPU), nil
	}
	d, err := device.Parse(name)
	if err != nil {
		return "", wire.BadRequest("%v", err)
	}
	switch d.Kind {
	case device.Metal:
		if runtime.GOOS != "darwin" {
			return "", wire.BadRequest("hive %s has no %s: Metal GPUs are on macOS, and this hive runs on %s", h.cfg.HiveID, d, runtime.GOOS)
		}
	case device.CUDA:
		gpus, err := device.DetectNVIDIA(ctx)
		if errors.Is(err, device.ErrNoNvidiaSMI) {
			return "", wire.BadRequest("hive %s has no NVIDIA GPU for %s: %v; spawn on cpu", h.cfg.HiveID, d, err)
		}
		if err != nil {
			return "", wire.BadRequest("hive %s cannot use %s: %v", h.cfg.HiveID, d, err)
		}
		var have []string
		for _, g := range gpus {
			if g.Index == d.Index {
				return d.String(), nil
			}
			have = append(have, fmt.Sprintf("%s (%s, %d MiB free)", g.Device(), g.Name, g.MemoryFreeBytes>>20))
		}
		if len(have) == 0 {
			return "", wire.BadRequest("hive %s has no GPU %s: nvidia-smi lists none", h.cfg.HiveID, d)
		}
		return "", wire.BadRequest("hive %s has no GPU %s; it has %s", h.cfg.HiveID, d, strings.Join(have, ", "))
	}
	return d.String(), nil
}
