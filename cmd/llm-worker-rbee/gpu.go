package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/llama"
)

// batchSize is llama.Load's default prompt batch, which sizes the GPU's
// compute buffers.
const batchSize = 512

// gpuLayers finds the GPU d (loading the backend libraries) and decides how
// many layers of f go on it: asked (>= 0) as given, else every layer that
// fits in its free memory by the estimate. A device that does not exist,
// or a model of which not one layer fits, is an error.
func gpuLayers(f *gguf.File, d device.Device, asked, ctxSize, slots int, verbose bool) (int, error) {
	loaded := llama.LoadBackends(verbose)
	bd, err := llama.FindDevice(d)
	if err != nil {
		return 0, err // it says why this device's backend did not load
	}
	free, total := bd.Memory()
	if ctxSize <= 0 {
		ctxSize = int(min(max(f.ContextLength(), 1), 4096))
	}
	needs, err := device.Estimate(f, ctxSize*slots, batchSize)
	if err != nil {
		// No estimate: try the whole model; llama.cpp says if it does not fit.
		slog.Warn("cannot estimate the model's GPU memory; putting every layer on the GPU", "err", err)
		return asked, nil
	}
	layers := asked
	if layers < 0 {
		layers = needs.Fit(free)
		if layers == 0 {
			return 0, fmt.Errorf("%s does not fit on %s (%s): %d MiB free, and one layer with its share of a %d-token context needs about %d MiB beside %d MiB of compute buffers; lower --ctx-size or --slots, or use --device cpu",
				f.Path, d, bd.Description, free>>20, ctxSize*slots, (needs.BlockBytes+needs.KVBytes)>>20, needs.ComputeBytes>>20)
		}
	}
	// Logged once the worker will go on, so that a refusal is one line.
	for _, b := range loaded {
		if b.Err != nil {
			slog.Warn("backend library not loaded", "reason", b.Err)
		} else {
			slog.Info("backend library loaded", "file", b.Path, "backend", b.Name, "devices", b.Devices)
		}
	}
	slog.Info("placing the model on a GPU", "device", d.String(), "name", bd.Description,
		"layers", min(layers, needs.All()), "of", needs.All(), "estimate_mib", needs.Bytes(layers)>>20,
		"free_mib", free>>20, "total_mib", total>>20)
	return layers, nil
}

// listDevices loads the backend libraries and prints what loaded and every
// device: what --device can name.
func listDevices(w io.Writer, verbose bool) {
	for _, b := range llama.LoadBackends(verbose) {
		if b.Err != nil {
			fmt.Fprintf(w, "backend library not loaded: %v\n", b.Err)
		} else {
			fmt.Fprintf(w, "backend %s loaded from %s (%d devices)\n", b.Name, b.Path, b.Devices)
		}
	}
	for _, d := range llama.Devices() {
		name := "cpu"
		switch d.Backend {
		case "CUDA":
			name = device.Device{Kind: device.CUDA, Index: d.Index}.String()
		case "Metal", "MTL":
			name = device.Device{Kind: device.Metal, Index: d.Index}.String()
		default:
			if d.Type != "cpu" {
				name = "(" + d.Backend + ")" // a backend --device cannot name
			}
		}
		free, total := d.Memory()
		fmt.Fprintf(w, "%-8s %-8s %s, %d of %d MiB free\n", name, d.Name, d.Description, free>>20, total>>20)
	}
}
