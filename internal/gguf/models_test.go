package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

const sharedModels = "../../../shared/models"

func sharedModel(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(sharedModels, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared model %s not available: %v", name, err)
	}
	return p
}

func TestSharedModels(t *testing.T) {
	cases := []struct {
		file        string
		arch        string
		tensors     int
		kvs         int
		fileType    string
		params      uint64
		ctx         uint64
		chat        bool
		canGenerate bool
	}{
		{"stories260K.gguf", "llama", 48, 19, "F32", 292800, 2048, false, true},
		{"TinyStories-656K-Q8_0.gguf", "llama", 20, 34, "Q8_0", 656000, 512, false, true},
		{"ggml-vocab-phi-3.gguf", "phi3", 0, 26, "F16", 0, 4096, true, false},
		{"ggml-vocab-gpt-2.gguf", "gpt2", 0, 16, "F16", 0, 1024, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			path := sharedModel(t, tc.file)
			start := time.Now()
			f, err := Check(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("parsed in %v", time.Since(start))
			if f.Version != 3 || f.Architecture() != tc.arch || len(f.Tensors) != tc.tensors || f.KV.Len() != tc.kvs {
				t.Errorf("version %d arch %q tensors %d keys %d", f.Version, f.Architecture(), len(f.Tensors), f.KV.Len())
			}
			if f.FileType() != tc.fileType || f.ParamCount() != tc.params || f.ContextLength() != tc.ctx || f.HasChatTemplate() != tc.chat {
				t.Errorf("file type %q params %d ctx %d chat %v", f.FileType(), f.ParamCount(), f.ContextLength(), f.HasChatTemplate())
			}
			err = f.RequireWeights()
			if tc.canGenerate != (err == nil) {
				t.Errorf("RequireWeights: %v", err)
			}
			if err != nil && (!errors.Is(err, ErrNoWeights) || err.Error()[:len(path)] != path) {
				t.Errorf("RequireWeights error %q", err)
			}
		})
	}
}

func TestSharedModelDetails(t *testing.T) {
	f, err := Check(sharedModel(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	if f.BlockCount() != 5 {
		t.Errorf("blocks %d", f.BlockCount())
	}
	if n, _ := f.KV.ArrayLen("tokenizer.ggml.tokens"); n != 512 {
		t.Errorf("vocab %d", n)
	}
	emb, ok := f.Tensor("token_embd.weight")
	if !ok || emb.Type != TypeF32 || len(emb.Dims) != 2 || emb.Dims[0] != 64 || emb.Dims[1] != 512 {
		t.Errorf("token_embd %+v", emb)
	}
	// The last tensor's data ends at the end of the file.
	if end := f.DataOffset + f.TensorBytes(); end > uint64(f.FileSize) {
		t.Errorf("data ends at %d of %d", end, f.FileSize)
	}

	phi, err := Check(sharedModel(t, "ggml-vocab-phi-3.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, ok := phi.KV.String("tokenizer.chat_template")
	if !ok || len(tmpl) != 269 {
		t.Errorf("template %d bytes", len(tmpl))
	}
	if id, _ := phi.KV.Uint("tokenizer.ggml.eos_token_id"); id != 32000 {
		t.Errorf("eos %d", id)
	}
}

// TestTruncateSharedModel cuts stories260K at about 200 evenly spaced
// places; each prefix must be rejected.
func TestTruncateSharedModel(t *testing.T) {
	b, err := os.ReadFile(sharedModel(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 200; k++ {
		n := k * len(b) / 200
		if _, err := parseBytes(b[:n]); err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
	// The last bytes too: the final tensor ends exactly at the end.
	if _, err := parseBytes(b[:len(b)-1]); err == nil {
		t.Fatal("file missing its last byte accepted")
	}
}

func TestCheckErrorsStartWithPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		write("zip.gguf", []byte("PK\x03\x04rest of a zip")): `zip.gguf: not a GGUF file (magic "PK\x03\x04")`,
		write("empty.gguf", nil):                             "empty.gguf: not a GGUF file",
		write("short.gguf", []byte("GG")):                    "short.gguf: truncated: header ends at byte 4 of 2",
		write("cut.gguf", baseFile().bytes()[:100]):          "cut.gguf: truncated: ",
		filepath.Join(dir, "missing.gguf"):                   "missing.gguf: cannot open: no such file or directory",
		dir:                                                  " is a directory, not a regular file",
	}
	for path, want := range cases {
		_, err := Check(path)
		if err == nil {
			t.Errorf("%s: no error", path)
			continue
		}
		if !bytes.Contains([]byte(err.Error()), []byte(want)) || err.Error()[:len(path)] != path {
			t.Errorf("got %q, want it to start with the path and contain %q", err, want)
		}
	}
}

// TestLargeVocabHeaderIsFast parses the header of a Qwen2-0.5B-sized file:
// 151,936 tokens with scores, types and as many merges, 290 tensors and
// 500+ MB of declared data. Parse reads only the header, so only the header
// has to exist.
func TestLargeVocabHeaderIsFast(t *testing.T) {
	const vocab = 151936
	toks := make([]string, vocab)
	scores := make([]float32, vocab)
	types := make([]int32, vocab)
	for i := range toks {
		toks[i] = "\u0120tok" + strconv.Itoa(i)
		types[i] = 1
	}
	kvs := []WriteKV{
		{"general.architecture", "qwen2"},
		{"qwen2.block_count", uint32(24)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.tokens", toks},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", toks},
	}
	nop := func(io.Writer) error { return nil }
	ts := []WriteTensor{{Name: "token_embd.weight", Type: TypeQ8_0, Dims: []uint64{896, vocab}, Write: nop}}
	for b := range 24 {
		for _, w := range []struct {
			name string
			dims []uint64
		}{
			{"attn_q", []uint64{896, 896}}, {"attn_k", []uint64{896, 128}}, {"attn_v", []uint64{896, 128}},
			{"attn_output", []uint64{896, 896}}, {"ffn_gate", []uint64{896, 4864}}, {"ffn_up", []uint64{896, 4864}},
			{"ffn_down", []uint64{4864, 896}},
		} {
			ts = append(ts, WriteTensor{Name: fmt.Sprintf("blk.%d.%s.weight", b, w.name), Type: TypeQ8_0, Dims: w.dims, Write: nop})
		}
		for _, n := range []string{"attn_norm.weight", "ffn_norm.weight", "attn_q.bias", "attn_k.bias", "attn_v.bias"} {
			ts = append(ts, WriteTensor{Name: fmt.Sprintf("blk.%d.%s", b, n), Type: TypeF32, Dims: []uint64{896}, Write: nop})
		}
	}
	ts = append(ts, WriteTensor{Name: "output_norm.weight", Type: TypeF32, Dims: []uint64{896}, Write: nop})
	l, err := plan(kvs, ts)
	if err != nil {
		t.Fatal(err)
	}
	if l.total < 500<<20 {
		t.Fatalf("declared size only %d", l.total)
	}
	start := time.Now()
	f, err := Parse(bytes.NewReader(l.header), int64(l.total))
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("header of %d bytes for a %d-byte file parsed in %v", len(l.header), l.total, elapsed)
	if n, _ := f.KV.ArrayLen("tokenizer.ggml.tokens"); n != vocab || len(f.Tensors) != 290 {
		t.Fatalf("vocab %d, %d tensors", n, len(f.Tensors))
	}
}
