// Package llama is rbee's binding over llama.h, and the only package that
// uses cgo. llama.cpp and ggml (CPU backend) are compiled from the Go module
// github.com/ollama/ollama, which this package imports for that side effect;
// the headers under include/ are copies of that module version's headers
// (see include/README.md).
package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/include
#include <stdlib.h>
#include "bridge.h"
*/
import "C"

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/cgo"
	"sync"
	"unsafe"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/gguf"

	_ "github.com/ollama/ollama/llama/llama.cpp/src"
)

// Options configure Load.
type Options struct {
	Threads   int // decode threads; 0 = runtime.NumCPU()
	CtxSize   int // tokens per sequence; 0 = the trained length, capped at 4096
	Slots     int // sequences held at once; 0 = 1
	BatchSize int // prompt tokens per llama_decode; 0 = 512
	Verbose   bool
	// VocabOnly loads the tokenizer and metadata without weights or a
	// context: enough to tokenize and render chat templates.
	VocabOnly bool
	// Progress is called while the weights load, with a fraction in [0,1].
	// Returning false aborts the load.
	Progress func(fraction float32) bool
	// Device is where the model runs: "" or "cpu", or a GPU such as
	// "cuda:0", whose backend library Load loads (LoadBackends) if needed.
	Device string
	// CacheRAM is the memory for prompt-cache sequences saved beyond the
	// slots, in bytes: 0 is DefaultCacheRAM; below 0 the prompt cache is
	// off and every request evaluates its whole prompt.
	CacheRAM int64
	// GPULayers is how many layers go to a GPU Device, counted as
	// llama.cpp's n_gpu_layers: the blocks, then the output layer. Below
	// 0: all of them.
	GPULayers int
}

var backendOnce sync.Once

// initOnce sets up llama.cpp's logging and backend once per process.
func initOnce(verbose bool) {
	backendOnce.Do(func() {
		C.rbee_quiet_logs(boolInt(verbose))
		C.llama_backend_init()
	})
}

// Model is a model loaded by llama.cpp. It implements engine.Model.
type Model struct {
	model *C.struct_llama_model
	vocab *C.struct_llama_vocab
	ctx   *C.struct_llama_context
	info  engine.Info

	mu    sync.Mutex // serialises llama_decode, the shared batch and the KV cache
	batch C.struct_llama_batch
	nb    int
	slots []slot // by llama.cpp sequence id
	open  int    // sequences open, placed in a slot or not yet
	cache promptCache
	sched scheduler // batches the steps of every open sequence
	// failed is the fatal DecodeError that broke the context; from then
	// on every step and NewSequence fails with it.
	failed error
	gpu    bool // a GPU backend holds the weights: never llama_free (see Close)
}

var _ engine.Model = (*Model)(nil)

//export goLoadProgress
func goLoadProgress(p C.float, handle C.uintptr_t) C.bool {
	fn := cgo.Handle(handle).Value().(func(float32) bool)
	return C.bool(fn(float32(p)))
}

// Load loads the GGUF file at path. The caller must have checked the file's
// header (package gguf) first: llama.cpp trusts what it reads.
func Load(path string, opt Options) (*Model, error) {
	// A FIFO or a device would block llama.cpp's open for ever.
	f, _, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	f.Close()
	initOnce(opt.Verbose)
	dev, err := device.Parse(cmp.Or(opt.Device, "cpu"))
	if err != nil {
		return nil, err
	}
	var gpu *BackendDevice
	if dev.IsGPU() && !opt.VocabOnly {
		LoadBackends(opt.Verbose)
		bd, err := FindDevice(dev)
		if err != nil {
			return nil, err
		}
		gpu = &bd
	}
	if opt.Threads <= 0 {
		opt.Threads = runtime.NumCPU()
	}
	if opt.Slots <= 0 {
		opt.Slots = 1
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 512
	}

	mp := C.llama_model_default_params()
	mp.n_gpu_layers = 0
	mp.vocab_only = C.bool(opt.VocabOnly)
	// An explicit device list, empty for the CPU: left NULL, llama.cpp
	// would put every GPU it can see into the context.
	devs := (*[2]C.ggml_backend_dev_t)(C.calloc(2, C.size_t(unsafe.Sizeof(C.ggml_backend_dev_t(nil)))))
	defer C.free(unsafe.Pointer(devs))
	mp.devices = &devs[0]
	var freeBefore uint64
	if gpu != nil {
		devs[0] = gpu.dev
		mp.n_gpu_layers = C.int32_t(math.MaxInt32)
		if opt.GPULayers >= 0 {
			mp.n_gpu_layers = C.int32_t(min(opt.GPULayers, math.MaxInt32))
		}
		freeBefore, _ = gpu.Memory()
	}
	if opt.Progress != nil {
		h := cgo.NewHandle(opt.Progress)
		defer h.Delete()
		C.rbee_set_progress(&mp, C.uintptr_t(h))
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	model := C.llama_model_load_from_file(cpath, mp)
	if model == nil {
		if gpu != nil {
			return nil, fmt.Errorf("llama.cpp could not load %s onto %s (%s, %d MiB free): the model may not fit; try fewer --gpu-layers (llama.cpp's lines above say more)",
				path, dev, gpu.Description, freeBefore>>20)
		}
		return nil, fmt.Errorf("llama.cpp could not load %s", path)
	}

	ctxTrain := int(C.llama_model_n_ctx_train(model))
	if opt.VocabOnly {
		m := &Model{model: model, vocab: C.llama_model_get_vocab(model)}
		m.info = engine.Info{Path: path, CtxTrain: ctxTrain, VocabSize: int(C.llama_vocab_n_tokens(m.vocab))}
		m.templateInfo()
		return m, nil
	}
	if opt.CtxSize <= 0 {
		opt.CtxSize = min(ctxTrain, 4096)
	}
	cp := C.llama_context_default_params()
	cp.n_ctx = C.uint32_t(opt.CtxSize * opt.Slots)
	cp.n_batch = C.uint32_t(opt.BatchSize)
	cp.n_ubatch = C.uint32_t(opt.BatchSize)
	cp.n_seq_max = C.uint32_t(opt.Slots)
	cp.n_threads = C.int32_t(opt.Threads)
	cp.n_threads_batch = C.int32_t(opt.Threads)
	cp.no_perf = true
	// One KV buffer shared by the slots batches their attention better
	// than a buffer per slot; each sequence is still held to CtxSize.
	cp.kv_unified = true
	ctx := C.llama_init_from_model(model, cp)
	if ctx == nil {
		if gpu != nil {
			// No llama_model_free: a process that used a GPU exits instead (see Close).
			free, _ := gpu.Memory()
			return nil, fmt.Errorf("llama.cpp could not create a context of %d tokens for %s on %s (%d MiB free after the weights): try a smaller --ctx-size or fewer --gpu-layers",
				opt.CtxSize, path, dev, free>>20)
		}
		C.llama_model_free(model)
		return nil, fmt.Errorf("llama.cpp could not create a context of %d tokens for %s", opt.CtxSize, path)
	}

	m := &Model{
		model: model,
		vocab: C.llama_model_get_vocab(model),
		ctx:   ctx,
		gpu:   gpu != nil,
		// llama.cpp may lower the batch size (never above the context).
		nb: int(C.llama_n_batch(ctx)),
	}
	m.batch = C.llama_batch_init(C.int32_t(m.nb), 0, 1)
	if m.nb <= 0 {
		m.Close()
		return nil, fmt.Errorf("llama.cpp chose a batch of %d tokens", m.nb)
	}
	m.slots = make([]slot, opt.Slots)
	m.cache.on = opt.CacheRAM >= 0
	if m.cache.on {
		m.cache.budget = cmp.Or(opt.CacheRAM, DefaultCacheRAM)
	}
	var desc [256]C.char
	C.llama_model_desc(model, &desc[0], C.size_t(len(desc)))
	m.info = engine.Info{
		Path:        path,
		Description: C.GoString(&desc[0]),
		CtxSize:     int(C.llama_n_ctx(ctx)) / opt.Slots,
		CtxTrain:    ctxTrain,
		VocabSize:   int(C.llama_vocab_n_tokens(m.vocab)),
		Params:      uint64(C.llama_model_n_params(model)),
		SizeBytes:   uint64(C.llama_model_size(model)),
		Device:      dev.String(),
	}
	m.templateInfo()
	if gpu != nil {
		m.info.DeviceName = gpu.Description
		m.info.GPULayers = min(int(mp.n_gpu_layers), int(C.llama_model_n_layer(model))+1)
		// What this model took on the device: weights, KV cache and
		// compute buffers. The driver's own context was set up by the
		// first Memory call, before the load, so it is not counted.
		if free, _ := gpu.Memory(); free < freeBefore {
			m.info.DeviceMemoryBytes = freeBefore - free
		}
	}
	return m, nil
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Info describes the loaded model.
func (m *Model) Info() engine.Info { return m.info }

// Tokenize implements engine.Model.
func (m *Model) Tokenize(text string) ([]engine.Token, error) {
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	n := len(text) + 2
	for range 2 {
		toks := make([]engine.Token, n)
		got := C.llama_tokenize(m.vocab, ctext, C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(&toks[0])), C.int32_t(n), true, true)
		if got >= 0 {
			toks = toks[:got]
			// A chat template that writes the BOS text itself, plus the BOS
			// the tokenizer adds, would start the prompt with two.
			if bos := engine.Token(C.llama_vocab_bos(m.vocab)); len(toks) >= 2 && toks[0] == bos && toks[1] == bos {
				toks = toks[1:]
			}
			return toks, nil
		}
		n = int(-got)
	}
	return nil, errors.New("tokenizer disagreed with itself about the token count")
}

// Piece implements engine.Model.
func (m *Model) Piece(t engine.Token) ([]byte, error) { return m.piece(t, false) }

// SpecialPiece implements engine.SpecialPiecer.
func (m *Model) SpecialPiece(t engine.Token) ([]byte, error) { return m.piece(t, true) }

func (m *Model) piece(t engine.Token, special bool) ([]byte, error) {
	// llama.cpp looks the token up with std::vector::at: out of range, it
	// throws through the C API and the process aborts.
	if t < 0 || int(t) >= m.info.VocabSize {
		return nil, fmt.Errorf("token %d is outside the vocabulary of %d tokens", t, m.info.VocabSize)
	}
	var buf [64]C.char
	n := C.llama_token_to_piece(m.vocab, C.llama_token(t), &buf[0], C.int32_t(len(buf)), 0, C.bool(special))
	if n >= 0 {
		return C.GoBytes(unsafe.Pointer(&buf[0]), n), nil
	}
	big := make([]byte, -n)
	got := C.llama_token_to_piece(m.vocab, C.llama_token(t), (*C.char)(unsafe.Pointer(&big[0])), C.int32_t(len(big)), 0, C.bool(special))
	if got < 0 {
		return nil, fmt.Errorf("llama_token_to_piece asked for %d bytes for token %d, then for %d", -n, t, -got)
	}
	return big[:got], nil
}

// IsEOG implements engine.Model.
func (m *Model) IsEOG(t engine.Token) bool {
	return bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// Close frees the context and the model. It must not be called while
// sequences are in use. A model on a GPU is not freed: in this llama.cpp,
// llama_free after the CUDA backend ran crashes (the context's scheduler
// resets backends it has already destroyed; ../shared/guide/gpu.md), so a
// GPU process ends by exiting and the driver takes the memory back.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.gpu {
		if m.ctx != nil {
			C.llama_batch_free(m.batch)
		}
		m.ctx, m.model = nil, nil
		return nil
	}
	if m.ctx != nil {
		C.llama_batch_free(m.batch)
		C.llama_free(m.ctx)
		m.ctx = nil
	}
	if m.model != nil {
		C.llama_model_free(m.model)
		m.model = nil
	}
	return nil
}
