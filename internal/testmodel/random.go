package testmodel

import (
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"

	"github.com/rbee/rbee/internal/gguf"
)

// Shape is the architecture of a random-weight model. The predefined shapes
// copy real models' hyperparameters so that load time, memory and speed are
// realistic even though the output is gibberish.
type Shape struct {
	Name    string // as accepted by ShapeByName and bench/mkmodel
	Arch    string // general.architecture
	Embd    int
	Blocks  int
	FF      int
	Heads   int
	KVHeads int
	Vocab   int
	Context int

	RopeFreqBase float32
	RMSEps       float32
	// WeightType is the type of the 2-D weights (F32, F16, Q8_0 or Q4_0);
	// norms and biases are always F32, as converters write them.
	WeightType gguf.GGMLType
	// TiedEmbeddings means there is no output.weight: llama.cpp then
	// reuses token_embd.weight for the output projection.
	TiedEmbeddings bool
	// QKVBias adds attn_{q,k,v}.bias to every block (as Qwen2 has).
	QKVBias bool
}

var (
	// Qwen2_0_5B has Qwen2-0.5B's shape: 494,032,768 parameters, Q8_0.
	Qwen2_0_5B = Shape{
		Name: "qwen2-0.5b", Arch: "qwen2",
		Embd: 896, Blocks: 24, FF: 4864, Heads: 14, KVHeads: 2, Vocab: 151936, Context: 32768,
		RopeFreqBase: 1e6, RMSEps: 1e-6, WeightType: gguf.TypeQ8_0,
		TiedEmbeddings: true, QKVBias: true,
	}
	// Llama3_2_1B has Llama-3.2-1B's shape (1.24B parameters), Q4_0.
	Llama3_2_1B = Shape{
		Name: "llama3.2-1b", Arch: "llama",
		Embd: 2048, Blocks: 16, FF: 8192, Heads: 32, KVHeads: 8, Vocab: 128256, Context: 131072,
		RopeFreqBase: 500000, RMSEps: 1e-5, WeightType: gguf.TypeQ4_0,
		TiedEmbeddings: true,
	}
	// Tiny is small enough to write in milliseconds, for unit tests. It
	// has a separate output.weight and grouped-query attention.
	Tiny = Shape{
		Name: "tiny", Arch: "llama",
		Embd: 64, Blocks: 2, FF: 128, Heads: 4, KVHeads: 2, Vocab: 512, Context: 512,
		RopeFreqBase: 10000, RMSEps: 1e-5, WeightType: gguf.TypeQ8_0,
	}
)

// Shapes lists the predefined shapes.
func Shapes() []Shape { return []Shape{Qwen2_0_5B, Llama3_2_1B, Tiny} }

// ShapeByName finds a predefined shape by its Name.
func ShapeByName(name string) (Shape, bool) {
	for _, s := range Shapes() {
		if s.Name == name {
			return s, true
		}
	}
	return Shape{}, false
}

// HeadDim is the width of one attention head.
func (s Shape) HeadDim() int { return s.Embd / s.Heads }

// KVDim is the width of the K and V projections (grouped-query attention).
func (s Shape) KVDim() int { return s.HeadDim() * s.KVHeads }

// Validate reports shapes llama.cpp or the quantizer could not handle.
func (s Shape) Validate() error {
	switch {
	case s.Embd <= 0 || s.Blocks <= 0 || s.FF <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Context <= 0:
		return fmt.Errorf("testmodel: shape %q: sizes must be positive", s.Name)
	case s.Embd%s.Heads != 0 || s.Heads%s.KVHeads != 0:
		return fmt.Errorf("testmodel: shape %q: %d heads do not divide %d or are not a multiple of %d KV heads", s.Name, s.Heads, s.Embd, s.KVHeads)
	case s.Vocab < baseVocabSize:
		return fmt.Errorf("testmodel: shape %q: vocabulary %d is smaller than the %d base tokens", s.Name, s.Vocab, baseVocabSize)
	case s.Blocks > gguf.MaxBlockCount:
		return fmt.Errorf("testmodel: shape %q: %d blocks exceed %d", s.Name, s.Blocks, gguf.MaxBlockCount)
	}
	bs := int(s.WeightType.BlockSize())
	if _, err := gguf.AppendEncoded(nil, s.WeightType, nil); err != nil || bs == 0 {
		return fmt.Errorf("testmodel: shape %q: cannot write weights of type %s", s.Name, s.WeightType)
	}
	if s.Embd%bs != 0 || s.FF%bs != 0 {
		return fmt.Errorf("testmodel: shape %q: embedding %d and FFN %d must be multiples of the %s block size %d", s.Name, s.Embd, s.FF, s.WeightType, bs)
	}
	return nil
}

type tensorSpec struct {
	name string
	typ  gguf.GGMLType
	dims []uint64
	fill float32 // for F32 vectors: the constant value; 2-D weights are random
	rand bool
}

func (s Shape) tensorSpecs() []tensorSpec {
	e, kv, ff, v := uint64(s.Embd), uint64(s.KVDim()), uint64(s.FF), uint64(s.Vocab)
	w := func(name string, dims ...uint64) tensorSpec {
		return tensorSpec{name: name, typ: s.WeightType, dims: dims, rand: true}
	}
	vec := func(name string, n uint64, fill float32) tensorSpec {
		return tensorSpec{name: name, typ: gguf.TypeF32, dims: []uint64{n}, fill: fill}
	}
	specs := []tensorSpec{w("token_embd.weight", e, v), vec("output_norm.weight", e, 1)}
	if !s.TiedEmbeddings {
		specs = append(specs, w("output.weight", e, v))
	}
	for b := range s.Blocks {
		p := fmt.Sprintf("blk.%d.", b)
		specs = append(specs, vec(p+"attn_norm.weight", e, 1), w(p+"attn_q.weight", e, e))
		if s.QKVBias {
			specs = append(specs, vec(p+"attn_q.bias", e, 0))
		}
		specs = append(specs, w(p+"attn_k.weight", e, kv))
		if s.QKVBias {
			specs = append(specs, vec(p+"attn_k.bias", kv, 0))
		}
		specs = append(specs, w(p+"attn_v.weight", e, kv))
		if s.QKVBias {
			specs = append(specs, vec(p+"attn_v.bias", kv, 0))
		}
		specs = append(specs,
			w(p+"attn_output.weight", e, e),
			vec(p+"ffn_norm.weight", e, 1),
			w(p+"ffn_gate.weight", e, ff),
			w(p+"ffn_down.weight", ff, e),
			w(p+"ffn_up.weight", e, ff),
		)
	}
	return specs
}

// ParamCount is the number of weights the model has (tied embeddings
// counted once, as Hugging Face counts them).
func (s Shape) ParamCount() uint64 {
	var n uint64
	for _, t := range s.tensorSpecs() {
		m := uint64(1)
		for _, d := range t.dims {
			m *= d
		}
		n += m
	}
	return n
}

// fileTypes maps the weight type to general.file_type (llama_ftype).
var fileTypes = map[gguf.GGMLType]uint32{gguf.TypeF32: 0, gguf.TypeF16: 1, gguf.TypeQ4_0: 2, gguf.TypeQ8_0: 7}

func (s Shape) kvs() []gguf.WriteKV {
	a := s.Arch + "."
	kvs := []gguf.WriteKV{
		{Key: "general.architecture", Value: s.Arch},
		{Key: "general.name", Value: "rbee random " + s.Name},
		{Key: "general.alignment", Value: uint32(32)},
		{Key: "general.file_type", Value: fileTypes[s.WeightType]},
		{Key: a + "context_length", Value: uint32(s.Context)},
		{Key: a + "embedding_length", Value: uint32(s.Embd)},
		{Key: a + "block_count", Value: uint32(s.Blocks)},
		{Key: a + "feed_forward_length", Value: uint32(s.FF)},
		{Key: a + "attention.head_count", Value: uint32(s.Heads)},
		{Key: a + "attention.head_count_kv", Value: uint32(s.KVHeads)},
		{Key: a + "attention.layer_norm_rms_epsilon", Value: s.RMSEps},
		{Key: a + "rope.freq_base", Value: s.RopeFreqBase},
		{Key: a + "rope.dimension_count", Value: uint32(s.HeadDim())},
		{Key: a + "vocab_size", Value: uint32(s.Vocab)},
	}
	return append(kvs, vocabKVs(s.Vocab)...)
}

func (s Shape) tensors(seed uint64) []gguf.WriteTensor {
	specs := s.tensorSpecs()
	out := make([]gguf.WriteTensor, len(specs))
	for i, sp := range specs {
		out[i] = gguf.WriteTensor{Name: sp.name, Type: sp.typ, Dims: sp.dims}
		if sp.rand {
			out[i].Write = randomWriter(sp, seed)
		} else {
			out[i].Write = f32Const(int(sp.dims[0]), 1, sp.fill)
		}
	}
	return out
}

// randomWriter streams uniform values in ±0.05 (small enough that
// activations stay finite through any number of layers with unit norms).
// Each tensor has its own generator seeded from the seed and its name, so
// the bytes of one tensor do not depend on the others.
func randomWriter(sp tensorSpec, seed uint64) func(io.Writer) error {
	return func(w io.Writer) error {
		h := fnv.New64a()
		h.Write([]byte(sp.name))
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		total := uint64(1)
		for _, d := range sp.dims {
			total *= d
		}
		// A chunk is a whole number of quantization blocks (rows are, so
		// the total is too); blocks never straddle chunks.
		const chunk = 1 << 16
		x := make([]float32, chunk)
		var buf []byte
		for total > 0 {
			n := min(total, chunk)
			fillUniform(r, x[:n])
			var err error
			if buf, err = gguf.AppendEncoded(buf[:0], sp.typ, x[:n]); err != nil {
				return err
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			total -= n
		}
		return nil
	}
}

// fillUniform draws four 16-bit values from each 64-bit output, which keeps
// the generator from dominating the time to write a 500 MB model.
func fillUniform(r *rand.Rand, x []float32) {
	const scale = 0.05 / 32768
	for i := 0; i < len(x); i += 4 {
		u := r.Uint64()
		for j := 0; j < 4 && i+j < len(x); j++ {
			x[i+j] = float32(int16(u>>(16*j))) * scale
		}
	}
}

// WriteRandom writes a model of the given shape with random weights drawn
// from seed. The same shape and seed give the same bytes. Data is streamed,
// so memory stays small whatever the model size.
func WriteRandom(path string, shape Shape, seed uint64) error {
	if err := shape.Validate(); err != nil {
		return err
	}
	return gguf.WriteFile(path, shape.kvs(), shape.tensors(seed))
}

// FileSize is the size in bytes of the file WriteRandom writes for s.
func (s Shape) FileSize() (int64, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	return gguf.EncodedSize(s.kvs(), s.tensors(0))
}
