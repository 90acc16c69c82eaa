package device

import (
	"fmt"

	"github.com/rbee/rbee/internal/gguf"
)

// PromptBatch is the prompt batch llama.cpp evaluates at once (llama.Load's
// default), which sizes the GPU's compute buffers.
const PromptBatch = 512

// Target is a GPU as the layer fitting sees it: what its backend
// (llama.cpp) reports of it before the model loads.
type Target struct {
	Device      Device
	Description string // e.g. "NVIDIA H200"
	Free, Total uint64 // bytes of memory
}

// Placement is how a model goes on a GPU: the worker's --gpu-layers.
type Placement struct {
	Layers int // llama.cpp's n_gpu_layers
	// Needs is the estimate it was decided by; zero when the header allows
	// none (Err says why), and Layers is then what was asked.
	Needs Needs
	Err   error
}

// Place decides how many layers of f a worker puts on gpu, with a context
// of ctxSize tokens (0: the model's, at most 4096) for each of slots
// sequences: asked (>= 0) as given, else every layer that fits in the
// GPU's free memory by the estimate. A model of which not one layer fits
// is an error that says what to change. A model that cannot be estimated
// gets what was asked (-1: everything); llama.cpp says if it does not fit.
func Place(f *gguf.File, gpu Target, asked, ctxSize, slots int) (Placement, error) {
	if ctxSize <= 0 {
		ctxSize = int(min(max(f.ContextLength(), 1), 4096))
	}
	needs, err := Estimate(f, ctxSize*slots, PromptBatch)
	if err != nil {
		return Placement{Layers: asked, Err: err}, nil
	}
	p := Placement{Layers: asked, Needs: needs}
	if asked < 0 {
		p.Layers = needs.Fit(gpu.Free)
		if p.Layers == 0 {
			return p, fmt.Errorf("%s does not fit on %s (%s): %d MiB free, and one layer with its share of a %d-token context needs about %d MiB beside %d MiB of compute buffers; lower --ctx-size or --slots, or use --device cpu",
				f.Path, gpu.Device, gpu.Description, gpu.Free>>20, ctxSize*slots, add(needs.BlockBytes, needs.KVBytes)>>20, needs.ComputeBytes>>20)
		}
	}
	return p, nil
}
