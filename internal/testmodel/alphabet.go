package testmodel

import (
	"io"
	"strings"

	"github.com/rbee/rbee/internal/gguf"
)

// The alphabet model is a llama-architecture model whose greedy output is
// fixed by construction. Token i embeds as the one-hot vector e_i; the one
// transformer block has all-zero weights, so it adds nothing to the
// residual stream; and output.weight maps e_i to the logit of AlphabetNext(i)
// alone. After the final RMSNorm that logit is about sqrt(AlphabetEmbd) ≈ 19.6
// and every other logit is exactly 0, so any greedy sampler picks it, the
// next token depends only on the current one, and the prompt's earlier
// tokens have no effect.
const (
	AlphabetName      = "rbee alphabet test model"
	AlphabetVocabSize = baseVocabSize // 354
	// AlphabetEmbd is the vocabulary rounded up to a multiple of 64, wide
	// enough for one-hot embeddings and a whole number of 64-wide heads.
	AlphabetEmbd    = (AlphabetVocabSize + 63) / 64 * 64 // 384
	AlphabetHeadDim = 64
	AlphabetHeads   = AlphabetEmbd / AlphabetHeadDim // 6
	AlphabetFF      = 64
	AlphabetContext = 2048
	// AlphabetTensors is the number of tensors in the file.
	AlphabetTensors = 12
)

// AlphabetVocab returns the alphabet model's tokens, scores and token types.
func AlphabetVocab() (tokens []string, scores []float32, types []int32) {
	return vocab(AlphabetVocabSize)
}

// AlphabetNext is the token the alphabet model predicts after token id:
// each printable ASCII character is followed by the next one ("a"→"b",
// " "→"!"), except that "z" is followed by EOS and "~" by the byte token
// <0xC3>, then <0xA9>, then a space, so the model writes "é" as two byte
// tokens, a UTF-8 character split across tokens. BOS and every other token
// are followed by "a".
func AlphabetNext(id int) int {
	switch id {
	case CharToken('z'):
		return TokenEOS
	case CharToken('~'):
		return ByteToken(0xC3)
	case ByteToken(0xC3):
		return ByteToken(0xA9)
	case ByteToken(0xA9):
		return CharToken(' ')
	}
	if id >= CharToken(' ') && id < CharToken('~') {
		return id + 1
	}
	return CharToken('a')
}

// AlphabetSucc is AlphabetNext for a printable ASCII character: the text of
// the next token (a single raw byte 0xC3 after "~"), or eos if the model
// stops. Other runes are followed by "a" (as byte tokens are).
func AlphabetSucc(r rune) (next string, eos bool) {
	id := CharToken(r)
	if id < 0 {
		return "a", false
	}
	n := AlphabetNext(id)
	return Piece(n), n == TokenEOS
}

// AlphabetContinuation predicts what the alphabet model generates for
// prompt (tokenized with BOS, without parsing special tokens) with greedy
// sampling: at most maxTokens tokens, stopping early when the model emits
// EOS, which hitEOS reports and which is not part of text.
//
// "abc" continues "defghijklmnopqrstuvwxyz" and then stops; "x" continues
// "yz" and stops; "}" continues "~é !\"#$%&'()*+,-./0..." until maxTokens.
// Note that "é" takes two tokens.
func AlphabetContinuation(prompt string, maxTokens int) (text string, hitEOS bool) {
	last := TokenBOS
	if ids := Tokenize(prompt); len(ids) > 0 {
		last = ids[len(ids)-1]
	}
	var b strings.Builder
	for range maxTokens {
		last = AlphabetNext(last)
		if last == TokenEOS {
			return b.String(), true
		}
		b.WriteString(Piece(last))
	}
	return b.String(), false
}

func alphabetKVs() []gguf.WriteKV {
	kvs := []gguf.WriteKV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: AlphabetName},
		{Key: "general.alignment", Value: uint32(32)},
		{Key: "general.file_type", Value: uint32(0)}, // LLAMA_FTYPE_ALL_F32
		{Key: "llama.context_length", Value: uint32(AlphabetContext)},
		{Key: "llama.embedding_length", Value: uint32(AlphabetEmbd)},
		{Key: "llama.block_count", Value: uint32(1)},
		{Key: "llama.feed_forward_length", Value: uint32(AlphabetFF)},
		{Key: "llama.attention.head_count", Value: uint32(AlphabetHeads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(AlphabetHeads)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
		{Key: "llama.rope.dimension_count", Value: uint32(AlphabetHeadDim)},
		{Key: "llama.vocab_size", Value: uint32(AlphabetVocabSize)},
	}
	return append(kvs, vocabKVs(AlphabetVocabSize)...)
}

// f32Rows streams a [cols, rows] F32 tensor whose row r is fill(r, row)
// applied to a zeroed row.
func f32Rows(cols, rows int, fill func(r int, row []float32)) func(io.Writer) error {
	return func(w io.Writer) error {
		row := make([]float32, cols)
		buf := make([]byte, 0, 4*cols)
		for r := range rows {
			clear(row)
			if fill != nil {
				fill(r, row)
			}
			if _, err := w.Write(gguf.AppendF32(buf[:0], row)); err != nil {
				return err
			}
		}
		return nil
	}
}

func f32Const(cols, rows int, v float32) func(io.Writer) error {
	return f32Rows(cols, rows, func(_ int, row []float32) {
		for i := range row {
			row[i] = v
		}
	})
}

func alphabetTensors() []gguf.WriteTensor {
	const e, v, ff = AlphabetEmbd, AlphabetVocabSize, AlphabetFF
	t := func(name string, dims []uint64, write func(io.Writer) error) gguf.WriteTensor {
		return gguf.WriteTensor{Name: name, Type: gguf.TypeF32, Dims: dims, Write: write}
	}
	// Row j of output.weight scores token j: it reads column i for every
	// token i whose successor is j.
	var preds [v][]int
	for i := range v {
		preds[AlphabetNext(i)] = append(preds[AlphabetNext(i)], i)
	}
	return []gguf.WriteTensor{
		t("token_embd.weight", []uint64{e, v}, f32Rows(e, v, func(i int, row []float32) { row[i] = 1 })),
		t("output_norm.weight", []uint64{e}, f32Const(e, 1, 1)),
		t("output.weight", []uint64{e, v}, f32Rows(e, v, func(j int, row []float32) {
			for _, i := range preds[j] {
				row[i] = 1
			}
		})),
		t("blk.0.attn_norm.weight", []uint64{e}, f32Const(e, 1, 1)),
		t("blk.0.attn_q.weight", []uint64{e, e}, f32Rows(e, e, nil)),
		t("blk.0.attn_k.weight", []uint64{e, e}, f32Rows(e, e, nil)),
		t("blk.0.attn_v.weight", []uint64{e, e}, f32Rows(e, e, nil)),
		t("blk.0.attn_output.weight", []uint64{e, e}, f32Rows(e, e, nil)),
		t("blk.0.ffn_norm.weight", []uint64{e}, f32Const(e, 1, 1)),
		t("blk.0.ffn_gate.weight", []uint64{e, ff}, f32Rows(e, ff, nil)),
		t("blk.0.ffn_down.weight", []uint64{ff, e}, f32Rows(ff, e, nil)),
		t("blk.0.ffn_up.weight", []uint64{e, ff}, f32Rows(e, ff, nil)),
	}
}

// WriteAlphabet writes the alphabet model to path (atomically). The file is
// the same, byte for byte, on every run and machine.
func WriteAlphabet(path string) error {
	return gguf.WriteFile(path, alphabetKVs(), alphabetTensors())
}

// AlphabetFileSize is the size in bytes of the file WriteAlphabet writes.
func AlphabetFileSize() int64 {
	n, err := gguf.EncodedSize(alphabetKVs(), alphabetTensors())
	if err != nil {
		panic(err) // the layout is fixed; only a bug gets here
	}
	return n
}
