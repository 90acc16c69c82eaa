package llama

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/gguf"
)

// PlaceOnGPU finds the GPU d (loading the backend libraries) and decides,
// by device.Place, how many layers of f go on it: asked (-1: every layer
// that fits), for ctxSize tokens in each of slots sequences. A GPU that is
// missing or too small for even one layer is an error, found before a
// worker listens.
func PlaceOnGPU(f *gguf.File, d device.Device, asked, ctxSize, slots int, verbose bool) (int, error) {
	loaded := LoadBackends(verbose)
	bd, err := FindDevice(d)
	if err != nil {
		return 0, err // it says why this device's backend did not load
	}
	free, total := bd.Memory()
	p, err := device.Place(f, device.Target{Device: d, Description: bd.Description, Free: free, Total: total}, asked, ctxSize, slots)
	if err != nil {
		return 0, err
	}
	// Logged once the worker will go on, so that a refusal is one line.
	for _, b := range loaded {
		if b.Err != nil {
			slog.Warn("backend library not loaded", "reason", b.Err)
		} else {
			slog.Info("backend library loaded", "file", b.Path, "backend", b.Name, "devices", b.Devices)
		}
	}
	if p.Err != nil {
		slog.Warn("cannot estimate the model's GPU memory; putting every layer asked for on the GPU", "err", p.Err)
		return p.Layers, nil
	}
	slog.Info("placing the model on a GPU", "device", d.String(), "name", bd.Description,
		"layers", min(p.Layers, p.Needs.All()), "of", p.Needs.All(), "estimate_mib", p.Needs.Bytes(p.Layers)>>20,
		"free_mib", free>>20, "total_mib", total>>20)
	return p.Layers, nil
}

// WriteDevices loads the backend libraries and writes what loaded and
// every device, by the name --device takes.
func WriteDevices(w io.Writer, verbose bool) {
	for _, b := range LoadBackends(verbose) {
		if b.Err != nil {
			fmt.Fprintf(w, "backend library not loaded: %v\n", b.Err)
		} else {
			fmt.Fprintf(w, "backend %s loaded from %s (%d devices)\n", b.Name, b.Path, b.Devices)
		}
	}
	for _, d := range Devices() {
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
