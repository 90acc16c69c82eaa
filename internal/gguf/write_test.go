package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func ramp(n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = scale * float32(i%17-8)
	}
	return x
}

func bytesTensor(name string, t GGMLType, dims []uint64, data []byte) WriteTensor {
	return WriteTensor{Name: name, Type: t, Dims: dims, Write: func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}}
}

// sampleFile is a small file with every writable value type. Its last
// tensor's size is a multiple of 32, so there is no trailing padding and
// cutting the file anywhere must be detected.
func sampleFile() ([]WriteKV, []WriteTensor, map[string][]byte) {
	kvs := []WriteKV{
		{"general.architecture", "llama"},
		{"general.alignment", uint32(32)},
		{"llama.block_count", uint32(1)},
		{"llama.context_length", uint32(64)},
		{"i32", int32(-5)},
		{"u64", uint64(1) << 40},
		{"f32", float32(1.5)},
		{"yes", true},
		{"tokenizer.ggml.tokens", []string{"a", "b", "▁c"}},
		{"tokenizer.ggml.scores", []float32{0, -1, -2}},
		{"tokenizer.ggml.token_type", []int32{1, 1, 6}},
		{"u8", uint8(9)},
		{"i64", int64(-9)},
		{"f64", float64(2.25)},
		{"u32s", []uint32{1, 2}},
	}
	data := map[string][]byte{
		"f32":  EncodeF32(ramp(40, 0.25)),      // 160 bytes
		"f16":  EncodeF16(ramp(24, 0.5)),       // 48 bytes
		"q4_0": QuantizeQ4_0(ramp(64, 0.1)),    // 36 bytes
		"q8_0": QuantizeQ8_0(ramp(32*16, 0.3)), // 544 bytes = 17*32
	}
	tensors := []WriteTensor{
		bytesTensor("f32", TypeF32, []uint64{8, 5}, data["f32"]),
		bytesTensor("f16", TypeF16, []uint64{24}, data["f16"]),
		bytesTensor("q4_0", TypeQ4_0, []uint64{32, 2}, data["q4_0"]),
		bytesTensor("q8_0", TypeQ8_0, []uint64{64, 2, 2, 2}, data["q8_0"]),
	}
	return kvs, tensors, data
}

func writeSample(t testing.TB) []byte {
	kvs, tensors, _ := sampleFile()
	var buf bytes.Buffer
	if err := Write(&buf, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriteRoundTrip(t *testing.T) {
	kvs, tensors, data := sampleFile()
	b := writeSample(t)
	size, err := EncodedSize(kvs, tensors)
	if err != nil || size != int64(len(b)) {
		t.Fatalf("EncodedSize = %d, %v; wrote %d", size, err, len(b))
	}
	f, err := parseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.KV.Len() != len(kvs) || len(f.Tensors) != len(tensors) {
		t.Fatalf("version %d, %d keys, %d tensors", f.Version, f.KV.Len(), len(f.Tensors))
	}
	for i, kv := range f.KV.All() {
		if kv.Key != kvs[i].Key {
			t.Errorf("key %d = %q, want %q", i, kv.Key, kvs[i].Key)
		}
	}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	s, _ := f.KV.String("general.architecture")
	check("arch", s, "llama")
	n, _ := f.KV.Int("i32")
	check("i32", n, int64(-5))
	u, _ := f.KV.Uint("u64")
	check("u64", u, uint64(1)<<40)
	fl, _ := f.KV.Float("f32")
	check("f32", fl, 1.5)
	fl, _ = f.KV.Float("f64")
	check("f64", fl, 2.25)
	yes, _ := f.KV.Bool("yes")
	check("yes", yes, true)
	toks, _ := f.KV.Strings("tokenizer.ggml.tokens")
	check("tokens", toks, []string{"a", "b", "▁c"})
	v, _ := f.KV.Get("tokenizer.ggml.token_type")
	check("token_type type", v.ElemType, TypeInt32)
	check("token_type[2]", v.Elems[2].Int, int64(6))
	v, _ = f.KV.Get("u8")
	check("u8", v.Type, TypeUint8)

	for i, ti := range f.Tensors {
		want := tensors[i]
		check(ti.Name+" name", ti.Name, want.Name)
		check(ti.Name+" type", ti.Type, want.Type)
		check(ti.Name+" dims", ti.Dims, want.Dims)
		start := f.DataOffset + ti.Offset
		if !bytes.Equal(b[start:start+ti.Size], data[ti.Name]) {
			t.Errorf("%s: data differs", ti.Name)
		}
		// Padding after each tensor is zero.
		for _, c := range b[start+ti.Size : alignUp(start+ti.Size, 32)] {
			if c != 0 {
				t.Fatalf("%s: non-zero padding", ti.Name)
			}
		}
	}
	if f.FileType() != "Q8_0" {
		t.Errorf("file type %q", f.FileType())
	}
	if got := f.ParamCount(); got != 40+24+64+512 {
		t.Errorf("params %d", got)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	kvs, tensors, _ := sampleFile()
	if err := WriteFile(path, kvs, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := Check(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != path || len(f.Tensors) != 4 {
		t.Fatalf("%+v", f)
	}
	good, _ := os.ReadFile(path)

	// A failing callback must leave the old file untouched and no temp.
	boom := errors.New("boom")
	bad := append([]WriteTensor(nil), tensors...)
	bad[3].Write = func(w io.Writer) error {
		w.Write(make([]byte, 100))
		return boom
	}
	if err := WriteFile(path, kvs, bad); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	now, _ := os.ReadFile(path)
	if !bytes.Equal(now, good) {
		t.Error("failed write changed the file")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want 1 (temp file left?)", len(ents))
	}
	// Nothing at all is created when the first write fails.
	if err := WriteFile(filepath.Join(dir, "new.gguf"), kvs, bad); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "new.gguf")); !os.IsNotExist(err) {
		t.Error("half-written file at path")
	}
}

func TestWriteWrongByteCount(t *testing.T) {
	kvs, tensors, data := sampleFile()
	for _, n := range []int{0, len(data["q4_0"]) - 1, len(data["q4_0"]) + 1} {
		ts := append([]WriteTensor(nil), tensors...)
		ts[2] = bytesTensor("q4_0", TypeQ4_0, []uint64{32, 2}, append(data["q4_0"], 0)[:n])
		err := Write(io.Discard, kvs, ts)
		if err == nil || !strings.Contains(err.Error(), `"q4_0"`) {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func TestWriteRejects(t *testing.T) {
	ok := bytesTensor("t", TypeF32, []uint64{2}, make([]byte, 8))
	cases := []struct {
		name    string
		kvs     []WriteKV
		tensors []WriteTensor
	}{
		{"duplicate key", []WriteKV{{"a", uint32(1)}, {"a", uint32(2)}}, nil},
		{"empty key", []WriteKV{{"", uint32(1)}}, nil},
		{"unsupported value", []WriteKV{{"a", struct{}{}}}, nil},
		{"int value", []WriteKV{{"a", 1}}, nil}, // plain int has no GGUF width
		{"alignment type", []WriteKV{{"general.alignment", uint64(32)}}, nil},
		{"alignment value", []WriteKV{{"general.alignment", uint32(48)}}, nil},
		{"duplicate tensor", nil, []WriteTensor{ok, ok}},
		{"bad type", nil, []WriteTensor{{Name: "x", Type: 4, Dims: []uint64{1}, Write: ok.Write}}},
		{"bad block", nil, []WriteTensor{{Name: "x", Type: TypeQ8_0, Dims: []uint64{16}, Write: ok.Write}}},
		{"no dims", nil, []WriteTensor{{Name: "x", Type: TypeF32, Write: ok.Write}}},
		{"nil write", nil, []WriteTensor{{Name: "x", Type: TypeF32, Dims: []uint64{2}}}},
	}
	for _, tc := range cases {
		if err := Write(io.Discard, tc.kvs, tc.tensors); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestTruncateEveryByte is B6: every prefix of a valid file is rejected,
// whether the size passed in is the prefix's (a truncated file on disk) or
// the original's (a stream that ends early), and nothing panics.
func TestTruncateEveryByte(t *testing.T) {
	b := writeSample(t)
	if _, err := parseBytes(b); err != nil {
		t.Fatal(err)
	}
	hdr := 0
	if f, _ := parseBytes(b); f != nil {
		hdr = int(f.HeaderSize)
	}
	for n := 0; n < len(b); n++ {
		if _, err := parse(bytes.NewReader(b[:n]), int64(n)); err == nil {
			t.Fatalf("prefix of %d bytes (of %d) accepted", n, len(b))
		}
		// A short stream is only visible while reading the header.
		if n < hdr {
			if _, err := parse(bytes.NewReader(b[:n]), int64(len(b))); err == nil {
				t.Fatalf("stream of %d bytes (declared %d) accepted", n, len(b))
			}
		}
	}
}
