package device

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"

	"github.com/rbee/rbee/internal/gguf"
)

// Margin is the GPU memory Fit leaves free: the CUDA runtime and other
// programs allocate beside the model, and an estimate is only an estimate.
const Margin = 512 << 20

// Needs is what a model asks of a GPU, estimated from its GGUF header
// before llama.cpp reads the file. Layers are counted as llama.cpp's
// n_gpu_layers counts them: the blocks, then the output layer as one more.
type Needs struct {
	Blocks       int    // repeating blocks (transformer layers)
	BlockBytes   uint64 // weights of the largest block
	OutputBytes  uint64 // output norm and matrix; for tied embeddings the copy of token_embd llama.cpp puts there
	KVBytes      uint64 // f16 K and V cache of one block for the whole context
	ComputeBytes uint64 // scratch buffers for one batch, an upper bound
}

// Estimate reads what f needs on a GPU for a context of ctxTokens tokens
// (every slot together) evaluated batch tokens at a time.
func Estimate(f *gguf.File, ctxTokens, batch int) (Needs, error) {
	if ctxTokens <= 0 || batch <= 0 {
		return Needs{}, fmt.Errorf("context %d and batch %d must be positive", ctxTokens, batch)
	}
	blocks := map[int]uint64{}
	var n Needs
	var embd, output uint64
	var haveOutput bool
	for _, t := range f.Tensors {
		if rest, ok := strings.CutPrefix(t.Name, "blk."); ok {
			num, _, _ := strings.Cut(rest, ".")
			i, err := strconv.Atoi(num)
			if err != nil || i < 0 || i > 1<<16 {
				return Needs{}, fmt.Errorf("tensor %.64q: not a block number", t.Name)
			}
			blocks[i] = add(blocks[i], t.Size)
			continue
		}
		switch t.Name {
		case "token_embd.weight":
			embd = t.Size
		case "output.weight":
			output = add(output, t.Size)
			haveOutput = true
		case "output_norm.weight", "output_norm.bias", "output.bias":
			output = add(output, t.Size)
		}
	}
	if len(blocks) == 0 {
		return Needs{}, errors.New("the model has no blk.N tensors: cannot tell its layers apart")
	}
	if !haveOutput {
		output = add(output, embd)
	}
	n.Blocks = len(blocks)
	if bc := int(f.BlockCount()); bc > n.Blocks {
		n.Blocks = bc
	}
	for _, b := range blocks {
		n.BlockBytes = max(n.BlockBytes, b)
	}
	n.OutputBytes = output

	embdLen := archMax(f, "embedding_length")
	heads := archMax(f, "attention.head_count")
	kvHeads := archMax(f, "attention.head_count_kv")
	if kvHeads == 0 {
		kvHeads = heads
	}
	var kDim, vDim uint64
	if heads > 0 {
		kDim, vDim = embdLen/heads, embdLen/heads
	}
	if k := archMax(f, "attention.key_length"); k > 0 {
		kDim = k
	}
	if v := archMax(f, "attention.value_length"); v > 0 {
		vDim = v
	}
	ctx, b := uint64(ctxTokens), uint64(batch)
	n.KVBytes = mul(ctx, kvHeads, add(kDim, vDim), 2)

	vocab, _ := f.KV.ArrayLen("tokenizer.ggml.tokens")
	ff := archMax(f, "feed_forward_length")
	// f32 activations of one batch: logits, the widest matmul outputs, and
	// the attention scores when flash attention is off.
	n.ComputeBytes = add(mul(b, 4, add(vocab, add(mul(2, ff), mul(4, embdLen)))), mul(b, ctx, heads, 4))
	return n, nil
}

// Bytes is the GPU memory that offloading layers (as n_gpu_layers) takes.
func (n Needs) Bytes(layers int) uint64 {
	layers = max(layers, 0)
	total := add(n.ComputeBytes, mul(uint64(min(layers, n.Blocks)), add(n.BlockBytes, n.KVBytes)))
	if layers > n.Blocks {
		total = add(total, n.OutputBytes)
	}
	return total
}

// All is the n_gpu_layers that offloads the whole model.
func (n Needs) All() int { return n.Blocks + 1 }

// Fit returns the n_gpu_layers that fit in free bytes of GPU memory, leaving
// Margin: All() when the whole model fits, else as many blocks as fit, 0
// when not even one does.
func (n Needs) Fit(free uint64) int {
	if free <= Margin {
		return 0
	}
	avail := free - Margin
	if n.Bytes(n.All()) <= avail {
		return n.All()
	}
	per := add(n.BlockBytes, n.KVBytes)
	if avail <= n.ComputeBytes || per == 0 {
		return 0
	}
	return int(min((avail-n.ComputeBytes)/per, uint64(n.Blocks)))
}

// A header can hold absurd numbers; estimates saturate rather than wrap,
// so that an absurd model never looks small.
func mul(xs ...uint64) uint64 {
	p := uint64(1)
	for _, x := range xs {
		hi, lo := bits.Mul64(p, x)
		if hi != 0 {
			return math.MaxUint64
		}
		p = lo
	}
	return p
}

func add(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// archMax reads "<arch>.<suffix>", an integer or an array of integers (one
// per layer, as some architectures write head counts), as its largest value.
func archMax(f *gguf.File, suffix string) uint64 {
	v, ok := f.KV.Get(f.Architecture() + "." + suffix)
	if !ok {
		return 0
	}
	if n, ok := v.AsUint(); ok {
		return n
	}
	var m uint64
	for _, e := range v.Elems {
		if n, ok := e.AsUint(); ok {
			m = max(m, n)
		}
	}
	return m
}
