package catalog

import (
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/wire"
)

// Assumptions of EstimateMemory, matching what llm-worker-rbee does when
// given no flags: one slot, the trained context capped at 4096 tokens, an
// f16 KV cache, llama.cpp's default micro-batch of 512 tokens.
const (
	estimateMaxCtx = 4096
	estimateBatch  = 512
	kvBytes        = 2 // f16
	f32Bytes       = 4
)

// EstimateMemory estimates the bytes a worker needs to run the model with
// default settings, computed here from the GGUF header rather than with a
// dependency (gpustack/gguf-parser-go would add some 10 modules for this):
//
//	weights (the tensor data, as stored)
//	+ KV cache: 2 (K and V) x layers x context x KV heads x head size x 2 bytes
//	+ scratch:  512 (batch) x (vocabulary + 4 x embedding) x 4 bytes
//
// The scratch term stands for llama.cpp's compute buffer and logits; it is
// an allowance, not an exact figure. Header values a file lacks count as 0,
// so a file without attention facts gets the weights alone.
func EstimateMemory(f *gguf.File) uint64 {
	weights := f.TensorBytes()
	arch := f.Architecture()
	u := func(key string) uint64 {
		n, _ := f.KV.Uint(arch + "." + key)
		return n
	}
	layers, embd := u("block_count"), u("embedding_length")
	heads := u("attention.head_count")
	kvHeads := u("attention.head_count_kv")
	if kvHeads == 0 {
		kvHeads = heads
	}
	keyLen, valLen := u("attention.key_length"), u("attention.value_length")
	if heads > 0 {
		if keyLen == 0 {
			keyLen = embd / heads
		}
		if valLen == 0 {
			valLen = embd / heads
		}
	}
	ctx := f.ContextLength()
	if ctx == 0 || ctx > estimateMaxCtx {
		ctx = estimateMaxCtx
	}
	kv := layers * ctx * kvHeads * (keyLen + valLen) * kvBytes
	vocab, _ := f.KV.ArrayLen("tokenizer.ggml.tokens")
	scratch := estimateBatch * (vocab + 4*embd) * f32Bytes
	return weights + kv + scratch
}

// facts fills in what the GGUF header says about a model.
func facts(info *wire.ModelInfo, f *gguf.File) {
	info.SizeBytes = f.FileSize
	info.Architecture = f.Architecture()
	info.Parameters = f.ParamCount()
	info.Quantization = f.FileType()
	info.ContextLength = f.ContextLength()
	info.HasChatTemplate = f.HasChatTemplate()
	info.MemoryBytes = EstimateMemory(f)
}
