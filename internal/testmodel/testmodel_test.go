package testmodel

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/gguf"
)

func TestAlphabetContinuation(t *testing.T) {
	cases := []struct {
		prompt string
		max    int
		text   string
		eos    bool
	}{
		{"abc", 100, "defghijklmnopqrstuvwxyz", true},
		{"abc", 23, "defghijklmnopqrstuvwxyz", false}, // EOS would be token 24
		{"abc", 3, "def", false},
		{"x", 10, "yz", true},
		{"z", 10, "", true},
		{"}", 6, "~é !\"", false}, // é is two tokens: ~, C3, A9, space, !, "
		{"}", 5, "~é !", false},
		{"}", 2, "~\xc3", false}, // a split character, as a client sees it mid-stream
		{"", 3, "abc", false},    // only BOS: BOS → a
		{"hello world", 4, "efgh", false},
		{"ends in space ", 3, "!\"#", false},
		{"café", 2, " !", false},   // last token is the byte token <0xA9>
		{"line\n", 2, "ab", false}, // <0x0A> → a
		{"日本", 2, "ab", false},     // byte tokens other than C3/A9 → a
		{"~", 100, "é !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz", true},
	}
	for _, tc := range cases {
		text, eos := AlphabetContinuation(tc.prompt, tc.max)
		if text != tc.text || eos != tc.eos {
			t.Errorf("AlphabetContinuation(%q, %d) = %q, %v; want %q, %v", tc.prompt, tc.max, text, eos, tc.text, tc.eos)
		}
	}
	if next, eos := AlphabetSucc('z'); !eos || next != "" {
		t.Errorf("Succ(z) = %q, %v", next, eos)
	}
	if next, _ := AlphabetSucc('~'); next != "\xc3" {
		t.Errorf("Succ(~) = %q", next)
	}
	if next, _ := AlphabetSucc(' '); next != "!" {
		t.Errorf("Succ(space) = %q", next)
	}
	if AlphabetNext(TokenBOS) != CharToken('a') || AlphabetNext(TokenEOS) != CharToken('a') || AlphabetNext(ByteToken(0)) != CharToken('a') {
		t.Error("BOS, EOS and bytes must be followed by a")
	}
}

func TestTokenize(t *testing.T) {
	got := Tokenize("a b▁é\x80")
	want := []int{CharToken('a'), CharToken(' '), CharToken('b'), CharToken(' '), ByteToken(0xC3), ByteToken(0xA9), ByteToken(0x80)}
	if len(got) != len(want) {
		t.Fatalf("got %v want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v want %v", got, want)
		}
	}
	tokens, _, types := AlphabetVocab()
	if tokens[CharToken(' ')] != "▁" || tokens[CharToken('a')] != "a" || tokens[ByteToken(0xC3)] != "<0xC3>" || types[ByteToken(0xC3)] != 6 {
		t.Error("vocabulary layout")
	}
	for id, tok := range tokens {
		if id >= CharToken(' ') && Piece(id) != strings.ReplaceAll(tok, "▁", " ") {
			t.Errorf("Piece(%d) = %q for token %q", id, Piece(id), tok)
		}
	}
}

func TestVocabUnique(t *testing.T) {
	tokens, scores, types := vocab(Tiny.Vocab)
	if len(tokens) != Tiny.Vocab || len(scores) != Tiny.Vocab || len(types) != Tiny.Vocab {
		t.Fatal("lengths")
	}
	seen := map[string]bool{}
	for _, tok := range tokens {
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
	if tokens[0] != "<unk>" || tokens[1] != "<s>" || tokens[2] != "</s>" || types[0] != 2 || types[1] != 3 || types[2] != 3 {
		t.Errorf("specials %q %v", tokens[:3], types[:3])
	}
}

func sha(t *testing.T, path string) [32]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestWriteAlphabet(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "a1.gguf"), filepath.Join(dir, "a2.gguf")
	if err := WriteAlphabet(p1); err != nil {
		t.Fatal(err)
	}
	if err := WriteAlphabet(p2); err != nil {
		t.Fatal(err)
	}
	if sha(t, p1) != sha(t, p2) {
		t.Error("two writes differ")
	}
	f, err := gguf.Check(p1)
	if err != nil {
		t.Fatal(err)
	}
	if f.FileSize != AlphabetFileSize() {
		t.Errorf("size %d, AlphabetFileSize %d", f.FileSize, AlphabetFileSize())
	}
	if len(f.Tensors) != AlphabetTensors || f.Architecture() != "llama" || f.FileType() != "F32" || f.ContextLength() != 2048 {
		t.Fatalf("%d tensors, arch %q, type %q", len(f.Tensors), f.Architecture(), f.FileType())
	}
	if err := f.RequireWeights(); err != nil {
		t.Error(err)
	}
	wantU := map[string]uint64{
		"general.alignment":               32,
		"llama.embedding_length":          384,
		"llama.block_count":               1,
		"llama.feed_forward_length":       64,
		"llama.attention.head_count":      6,
		"llama.attention.head_count_kv":   6,
		"llama.rope.dimension_count":      64,
		"llama.vocab_size":                354,
		"tokenizer.ggml.bos_token_id":     1,
		"tokenizer.ggml.eos_token_id":     2,
		"tokenizer.ggml.unknown_token_id": 0,
		"general.file_type":               0,
	}
	for k, want := range wantU {
		v, _ := f.KV.Get(k)
		if got, ok := f.KV.Uint(k); !ok || got != want || v.Type != gguf.TypeUint32 {
			t.Errorf("%s = %d (%v, %s), want uint32 %d", k, got, ok, v.Type, want)
		}
	}
	for k, want := range map[string]string{"general.name": AlphabetName, "tokenizer.ggml.model": "llama"} {
		if got, _ := f.KV.String(k); got != want {
			t.Errorf("%s = %q", k, got)
		}
	}
	for k, want := range map[string]bool{"tokenizer.ggml.add_bos_token": true, "tokenizer.ggml.add_eos_token": false, "tokenizer.ggml.add_space_prefix": false} {
		if got, ok := f.KV.Bool(k); !ok || got != want {
			t.Errorf("%s = %v, %v", k, got, ok)
		}
	}
	if eps, _ := f.KV.Float("llama.attention.layer_norm_rms_epsilon"); float32(eps) != 1e-5 {
		t.Errorf("eps %g", eps)
	}
	for _, k := range []string{"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"} {
		if n, _ := f.KV.ArrayLen(k); n != AlphabetVocabSize {
			t.Errorf("%s has %d elements", k, n)
		}
	}
	if v, _ := f.KV.Get("tokenizer.ggml.token_type"); v.ElemType != gguf.TypeInt32 {
		t.Errorf("token_type is %s", v.ElemType)
	}
	if _, ok := f.Tensor("output.weight"); !ok {
		t.Error("no separate output.weight")
	}
	checkAlphabetWeights(t, p1, f)
}

// checkAlphabetWeights runs the model by hand: one-hot embedding, a block
// that adds nothing, RMSNorm, output projection, and checks the argmax is
// AlphabetNext for every token.
func checkAlphabetWeights(t *testing.T, path string, f *gguf.File) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tensor := func(name string) []float32 {
		ti, ok := f.Tensor(name)
		if !ok || ti.Type != gguf.TypeF32 {
			t.Fatalf("%s missing or not F32", name)
		}
		raw := b[f.DataOffset+ti.Offset : f.DataOffset+ti.Offset+ti.Size]
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out
	}
	for _, name := range []string{"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight", "blk.0.attn_output.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"} {
		for _, v := range tensor(name) {
			if v != 0 {
				t.Fatalf("%s is not all zero", name)
			}
		}
	}
	for _, name := range []string{"output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"} {
		for _, v := range tensor(name) {
			if v != 1 {
				t.Fatalf("%s is not all one", name)
			}
		}
	}
	const e, nv = AlphabetEmbd, AlphabetVocabSize
	emb, out := tensor("token_embd.weight"), tensor("output.weight")
	for tok := range nv {
		h := emb[tok*e : (tok+1)*e]
		var ss float64
		for _, v := range h {
			ss += float64(v * v)
		}
		scale := 1 / math.Sqrt(ss/e+1e-5)
		best, bestL, second := -1, math.Inf(-1), math.Inf(-1)
		for j := range nv {
			var l float64
			for i, w := range out[j*e : (j+1)*e] {
				l += float64(w) * float64(h[i]) * scale
			}
			if l > bestL {
				best, bestL, second = j, l, bestL
			} else if l > second {
				second = l
			}
		}
		if best != AlphabetNext(tok) || bestL < 19 || second != 0 {
			t.Fatalf("token %d: argmax %d (logit %g, runner-up %g), want %d", tok, best, bestL, second, AlphabetNext(tok))
		}
	}
}

func TestWriteRandomTiny(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tiny.gguf")
	if err := WriteRandom(p, Tiny, 7); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(p)
	if err != nil {
		t.Fatal(err)
	}
	size, err := Tiny.FileSize()
	if err != nil || size != f.FileSize {
		t.Errorf("FileSize %d (%v), wrote %d", size, err, f.FileSize)
	}
	if f.ParamCount() != Tiny.ParamCount() || f.FileType() != "Q8_0" || f.Architecture() != "llama" {
		t.Errorf("params %d vs %d, type %q", f.ParamCount(), Tiny.ParamCount(), f.FileType())
	}
	// 2 + output + 9 per block
	if len(f.Tensors) != 3+9*Tiny.Blocks {
		t.Errorf("%d tensors", len(f.Tensors))
	}
	if n, _ := f.KV.ArrayLen("tokenizer.ggml.tokens"); n != uint64(Tiny.Vocab) {
		t.Errorf("vocab %d", n)
	}
	if k, ok := f.Tensor("blk.1.attn_k.weight"); !ok || k.Dims[1] != uint64(Tiny.KVDim()) {
		t.Errorf("attn_k %+v", k)
	}
	// Same seed, same bytes; another seed, other bytes.
	p2, p3 := filepath.Join(dir, "tiny2.gguf"), filepath.Join(dir, "tiny3.gguf")
	if err := WriteRandom(p2, Tiny, 7); err != nil {
		t.Fatal(err)
	}
	if err := WriteRandom(p3, Tiny, 8); err != nil {
		t.Fatal(err)
	}
	if sha(t, p) != sha(t, p2) || sha(t, p) == sha(t, p3) {
		t.Error("WriteRandom is not a function of its seed")
	}
	// Weights are small: dequantize the embedding.
	b, _ := os.ReadFile(p)
	emb, _ := f.Tensor("token_embd.weight")
	vals := gguf.DequantizeQ8_0(b[f.DataOffset+emb.Offset : f.DataOffset+emb.Offset+emb.Size])
	var maxAbs, sum float64
	for _, v := range vals {
		maxAbs = max(maxAbs, math.Abs(float64(v)))
		sum += float64(v)
	}
	if maxAbs > 0.051 || maxAbs < 0.04 || math.Abs(sum/float64(len(vals))) > 0.005 {
		t.Errorf("embedding max |x| %g, mean %g", maxAbs, sum/float64(len(vals)))
	}
}

func TestShapes(t *testing.T) {
	const real = 494_032_768 // Qwen2-0.5B as published
	if n := Qwen2_0_5B.ParamCount(); math.Abs(float64(n)-real)/real > 0.01 {
		t.Errorf("Qwen2-0.5B has %d parameters, want about %d", n, real)
	}
	if n := Llama3_2_1B.ParamCount(); n < 1_230_000_000 || n > 1_240_000_000 {
		t.Errorf("Llama-3.2-1B has %d parameters", n)
	}
	for _, s := range Shapes() {
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
		if got, ok := ShapeByName(s.Name); !ok || got.Name != s.Name {
			t.Errorf("ShapeByName(%q)", s.Name)
		}
	}
	if Qwen2_0_5B.HeadDim() != 64 || Llama3_2_1B.HeadDim() != 64 || Qwen2_0_5B.KVDim() != 128 {
		t.Error("head dims")
	}
	bad := Tiny
	bad.Embd = 48 // not a multiple of the Q8_0 block
	if err := bad.Validate(); err == nil {
		t.Error("bad shape accepted")
	}
	// The big shapes' layouts are computed without writing them.
	start := time.Now()
	size, err := Qwen2_0_5B.FileSize()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("qwen2-0.5b would be %d bytes (layout in %v)", size, time.Since(start))
	if size < 500<<20 || size > 560<<20 {
		t.Errorf("qwen2-0.5b size %d", size)
	}
}

// TestWriteQwen2Full writes the real-sized model; it takes seconds and
// half a gigabyte of disk, so it only runs when asked for.
func TestWriteQwen2Full(t *testing.T) {
	if os.Getenv("RBEE_TESTMODEL_FULL") == "" {
		t.Skip("set RBEE_TESTMODEL_FULL=1 to write the 0.5B model")
	}
	p := filepath.Join(t.TempDir(), "qwen2.gguf")
	start := time.Now()
	if err := WriteRandom(p, Qwen2_0_5B, 1); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote in %v", time.Since(start))
	start = time.Now()
	f, err := gguf.Check(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("checked in %v: %d tensors, %d params, %s", time.Since(start), len(f.Tensors), f.ParamCount(), f.FileType())
	if f.ParamCount() != Qwen2_0_5B.ParamCount() {
		t.Error("param count")
	}
}
