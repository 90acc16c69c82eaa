package gguf

import (
	"bytes"
	"errors"
	"math"
	"runtime"
	"strings"
	"testing"
)

func TestBaseFileIsValid(t *testing.T) {
	f, err := parseBytes(baseFile().bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 || len(f.Tensors) != 2 || f.KV.Len() != 5 {
		t.Fatalf("got %+v", f)
	}
	if f.Tensors[0].Size != 256 || f.Tensors[1].Size != 68 {
		t.Errorf("sizes %d %d", f.Tensors[0].Size, f.Tensors[1].Size)
	}
	if f.DataOffset%32 != 0 || f.DataOffset < f.HeaderSize || f.DataOffset-f.HeaderSize >= 32 {
		t.Errorf("header %d, data at %d", f.HeaderSize, f.DataOffset)
	}
}

// TestRules breaks one thing at a time in a valid file; every rule in the
// validator has at least one row here.
func TestRules(t *testing.T) {
	deep := func(depth int) []byte {
		// depth nested arrays, each holding one element, innermost holds uint8s
		b := arrHead(TypeUint8, 1)
		b = append(b, 7)
		for i := 1; i < depth; i++ {
			b = append(arrHead(TypeArray, 1), b...)
		}
		return tagged(TypeArray, b)
	}
	setKV := func(key string, val []byte) func(*rawFile) {
		return func(f *rawFile) {
			for i := range f.kvs {
				if f.kvs[i].key == key {
					f.kvs[i].val = val
					return
				}
			}
			f.kvs = append(f.kvs, rawKV{key, val})
		}
	}
	tensor := func(i int, mut func(*rawTensor)) func(*rawFile) {
		return func(f *rawFile) { mut(&f.tensors[i]) }
	}
	// rawTail makes a file of one key whose bytes are tail (plus slack, so
	// the up-front size check passes and the key's own check is reached).
	rawTail := func(tail []byte) func(*rawFile) {
		return func(f *rawFile) {
			f.kvs, f.tensors, f.nKV, f.tail = nil, nil, ptr(1), append(tail, make([]byte, 32)...)
		}
	}
	tests := []struct {
		name string
		mut  func(*rawFile)
		want string // substring of the error; "" = must parse
	}{
		{"valid", func(*rawFile) {}, ""},
		{"magic zip", func(f *rawFile) { f.magic = "PK\x03\x04" }, `not a GGUF file (magic "PK\x03\x04")`},
		{"magic lowercase", func(f *rawFile) { f.magic = "gguf" }, "not a GGUF file"},
		{"version 1", func(f *rawFile) { f.version = 1 }, "unsupported GGUF version 1 "},
		{"version 0", func(f *rawFile) { f.version = 0 }, "unsupported GGUF version 0"},
		{"version 4", func(f *rawFile) { f.version = 4 }, "unsupported GGUF version 4"},
		{"version 2", func(f *rawFile) { f.version = 2 }, ""},
		{"version big-endian", func(f *rawFile) { f.version = 3 << 24 }, "big-endian"},
		{"tensors 2^64-1", func(f *rawFile) { f.nTensors = ptr(math.MaxUint64) }, "tensor count 18446744073709551615 exceeds the limit of 1000000"},
		{"tensors over cap", func(f *rawFile) { f.nTensors = ptr(MaxTensors + 1) }, "tensor count 1000001 exceeds"},
		{"tensors at cap, file small", func(f *rawFile) { f.nTensors = ptr(MaxTensors) }, "truncated: 5 keys and 1000000 tensors need at least"},
		{"kv 2^64-1", func(f *rawFile) { f.nKV = ptr(math.MaxUint64) }, "metadata key count 18446744073709551615 exceeds the limit of 100000"},
		{"kv over cap", func(f *rawFile) { f.nKV = ptr(MaxKV + 1) }, "metadata key count 100001 exceeds"},
		{"kv at cap, file small", func(f *rawFile) { f.nKV = ptr(MaxKV) }, "truncated: 100000 keys"},
		{"key length 2^63", rawTail(le.AppendUint64(nil, 1<<63)), "string length 9223372036854775808 exceeds the limit of 65536 bytes (in key #0)"},
		{"key length 2^64-1", rawTail(le.AppendUint64(nil, math.MaxUint64)), "string length 18446744073709551615 exceeds"},
		{"key empty", setKV("", vU32(1)), `key #5 is empty`},
		{"key duplicate", func(f *rawFile) { f.kvs = append(f.kvs, rawKV{"llama.block_count", vU32(3)}) }, `duplicate metadata key "llama.block_count"`},
		{"string length 2^63", setKV("s", tagged(TypeString, le.AppendUint64(nil, 1<<63))), `string length 9223372036854775808 exceeds the limit of 16777216 bytes (in key "s")`},
		{"string length 2^64-1", setKV("s", tagged(TypeString, le.AppendUint64(nil, math.MaxUint64))), "string length 18446744073709551615 exceeds"},
		{"string over 16 MiB", setKV("s", tagged(TypeString, le.AppendUint64(nil, MaxStringLen+1))), "string length 16777217 exceeds"},
		{"string past EOF", setKV("s", tagged(TypeString, le.AppendUint64(nil, 1<<20))), "truncated: header ends at byte"},
		{"unknown value type 256", setKV("u", tagged(256, []byte{0, 0, 0, 0})), `key "u" has unknown value type 256`},
		{"unknown value type 13", setKV("u", tagged(13)), "unknown value type 13"},
		{"array of unknown type", setKV("a", tagged(TypeArray, arrHead(256, 1))), "array of unknown value type 256"},
		{"array 2^64-1 long", setKV("a", tagged(TypeArray, arrHead(TypeUint8, math.MaxUint64))), "array length 18446744073709551615 exceeds the limit of 16777216"},
		{"array over 64 Mi", setKV("a", tagged(TypeArray, arrHead(TypeUint32, 64<<20+1))), "array length 67108865 exceeds"},
		{"array over 16 Mi", setKV("a", tagged(TypeArray, arrHead(TypeUint32, MaxArrayLen+1))), "exceeds the limit of 16777216"},
		{"array longer than file", setKV("a", tagged(TypeArray, arrHead(TypeUint32, 1_000_000))), "array of 1000000 uint32 needs at least 4000000 bytes"},
		{"string array longer than file", setKV("a", tagged(TypeArray, arrHead(TypeString, 1_000_000))), "array of 1000000 string needs at least 8000000 bytes"},
		{"array of arrays (depth 2)", setKV("a", deep(2)), ""},
		{"arrays 3 deep", setKV("a", deep(3)), "arrays nested more than 2 deep"},
		{"arrays 1000 deep", setKV("a", deep(1000)), "arrays nested more than 2 deep"},
		{"alignment 0", setKV("general.alignment", vU32(0)), "general.alignment 0 is not a power of two"},
		{"alignment 3", setKV("general.alignment", vU32(3)), "general.alignment 3 is not a power of two"},
		{"alignment 2 MiB", setKV("general.alignment", vU32(2<<20)), "general.alignment 2097152 is not a power of two between 1 and 1048576"},
		{"alignment uint64", setKV("general.alignment", vU64(32)), "general.alignment has type uint64, want uint32"},
		{"alignment 1", setKV("general.alignment", vU32(1)), ""},
		{"alignment 64", func(f *rawFile) { f.kvs[1].val, f.align = vU32(64), 64 }, ""},
		{"alignment 64, offset unaligned", func(f *rawFile) {
			f.kvs[1].val, f.align, f.dataLen = vU32(64), 64, 288+68
			f.tensors[1].off = 288
		}, `tensor "b" offset 288 is not a multiple of the alignment 64`},
		{"block_count 512", setKV("llama.block_count", vU32(512)), ""},
		{"block_count 513", setKV("llama.block_count", vU32(513)), "llama.block_count 513 exceeds the limit of 512"},
		{"block_count 2^64-1", setKV("llama.block_count", vU64(math.MaxUint64)), "llama.block_count 18446744073709551615 exceeds"},
		{"block_count negative", setKV("llama.block_count", vI32(-1)), "llama.block_count is not a non-negative integer"},
		{"block_count string", setKV("llama.block_count", vStr("2")), "llama.block_count is not a non-negative integer"},
		{"architecture not a string", setKV("general.architecture", vU32(1)), "general.architecture has type uint32, want string"},
		{"tensor name empty", tensor(0, func(r *rawTensor) { r.name = "" }), "tensor #0 has an empty name"},
		{"tensor name 4097 bytes", tensor(0, func(r *rawTensor) { r.name = strings.Repeat("n", 4097) }), "string length 4097 exceeds the limit of 4096 bytes (in name of tensor #0)"},
		{"tensor name 4096 bytes", tensor(0, func(r *rawTensor) { r.name = strings.Repeat("n", 4096) }), ""},
		{"tensor name duplicate", tensor(1, func(r *rawTensor) { r.name = "a" }), `duplicate tensor name "a"`},
		{"n_dims 0", tensor(0, func(r *rawTensor) { r.dims = nil }), `tensor "a" has 0 dimensions (must be 1 to 4)`},
		{"n_dims 5", tensor(0, func(r *rawTensor) { r.dims = []uint64{32, 1, 1, 1, 1} }), `tensor "a" has 5 dimensions`},
		{"n_dims 4", tensor(0, func(r *rawTensor) { r.dims = []uint64{32, 2, 1, 1} }), ""},
		{"dim 0", tensor(0, func(r *rawTensor) { r.dims = []uint64{32, 0} }), `tensor "a" dimension 1 is 0`},
		{"dim 2^64-1", tensor(0, func(r *rawTensor) { r.dims = []uint64{math.MaxUint64, 2} }), "dimension 0 is 18446744073709551615"},
		{"product overflows uint64", tensor(0, func(r *rawTensor) { r.dims = []uint64{1 << 62, 4} }), "element count overflows"},
		{"product overflows int64", tensor(0, func(r *rawTensor) { r.dims = []uint64{1 << 32, 1 << 31} }), "element count overflows"},
		{"bytes overflow int64", tensor(0, func(r *rawTensor) { r.dims = []uint64{1 << 31, 1 << 31} }), "size in bytes overflows"},
		{"ggml type 4 (removed)", tensor(0, func(r *rawTensor) { r.typ = 4 }), `tensor "a" has unknown ggml type 4`},
		{"ggml type 40", tensor(0, func(r *rawTensor) { r.typ = 40 }), "unknown ggml type 40"},
		{"ggml type -1", tensor(0, func(r *rawTensor) { r.typ = math.MaxUint32 }), "unknown ggml type 4294967295"},
		{"row not a block multiple", tensor(1, func(r *rawTensor) { r.dims = []uint64{48} }), `tensor "b" has 48 elements per row, not a multiple of the Q8_0 block size 32`},
		{"offset unaligned", tensor(1, func(r *rawTensor) { r.off = 260 }), `tensor "b" offset 260 is not a multiple of the alignment 32`},
		{"data past EOF", tensor(1, func(r *rawTensor) { r.off = 288 }), `tensor "b" data [`},
		{"offset 2^64-32", tensor(1, func(r *rawTensor) { r.off = math.MaxUint64 - 31 }), "overflows"},
		{"overlap", tensor(1, func(r *rawTensor) { r.off = 224 }), `tensors "a" [`},
		{"file too short for data", func(f *rawFile) { f.dataLen = 300 }, "lies past the end of the file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := baseFile()
			tc.mut(&f)
			b := f.bytes()
			_, err := parseBytes(b)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got success", tc.want)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

// TestHugeCountsConstantMemory checks that hostile counts are refused
// before anything is allocated for them.
func TestHugeCountsConstantMemory(t *testing.T) {
	cases := map[string][]byte{}
	f := baseFile()
	f.nTensors = ptr(math.MaxUint64)
	cases["tensors"] = f.bytes()
	f = baseFile()
	f.nKV = ptr(math.MaxUint64)
	cases["kv"] = f.bytes()
	f = baseFile()
	f.kvs = append(f.kvs, rawKV{"a", tagged(TypeArray, arrHead(TypeString, MaxArrayLen))})
	cases["array"] = f.bytes()
	f = baseFile()
	f.kvs = append(f.kvs, rawKV{"s", tagged(TypeString, le.AppendUint64(nil, MaxStringLen))})
	cases["string"] = f.bytes()
	for name, b := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range 10 {
			if _, err := parseBytes(b); err == nil {
				t.Fatalf("%s: parsed", name)
			}
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 10<<20 {
			t.Errorf("%s: allocated %d bytes for 10 parses", name, d)
		}
	}
}

func TestNestedArrayValues(t *testing.T) {
	f := baseFile()
	inner := func(vals ...uint32) []byte {
		b := arrHead(TypeUint32, uint64(len(vals)))
		for _, v := range vals {
			b = le.AppendUint32(b, v)
		}
		return b
	}
	f.kvs = append(f.kvs, rawKV{"nested", tagged(TypeArray, arrHead(TypeArray, 2), inner(1, 2), inner(3))})
	p, err := parseBytes(f.bytes())
	if err != nil {
		t.Fatal(err)
	}
	v, _ := p.KV.Get("nested")
	if v.Len != 2 || !v.Kept || v.Elems[0].Len != 2 || v.Elems[1].Elems[0].Uint != 3 {
		t.Fatalf("got %+v", v)
	}
}

func TestStreamShorterThanDeclared(t *testing.T) {
	// Parse reads only the header, so only cuts inside it can be noticed.
	b := baseFile().bytes()
	for _, n := range []int{0, 3, 10, 40, len(baseFile().header()) - 1} {
		_, err := Parse(bytes.NewReader(b[:n]), int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("cut at %d: %v", n, err)
		}
	}
	if _, err := Parse(bytes.NewReader(b), -1); err == nil {
		t.Error("negative size accepted")
	}
}

// TestMetadataAccessors covers the typed getters and what is kept.
func TestMetadataAccessors(t *testing.T) {
	f := baseFile()
	long := strings.Repeat("x", KeepStringLen+1)
	f.kvs = append(f.kvs,
		rawKV{"i8", tagged(TypeInt8, []byte{0xff})},
		rawKV{"i32", vI32(7)},
		rawKV{"u64", vU64(1 << 40)},
		rawKV{"f", vF32(0.5)},
		rawKV{"b", tagged(TypeBool, []byte{1})},
		rawKV{"long", vStr(long)},
		rawKV{"tokenizer.chat_template", vStr(long)},
		rawKV{"big", tagged(TypeArray, arrHead(TypeUint8, 100), make([]byte, 100))},
		rawKV{"strs", vArr(TypeString, 2, rawStr("p"), rawStr("q"))},
	)
	p, err := parseBytes(f.bytes())
	if err != nil {
		t.Fatal(err)
	}
	kv := p.KV
	if n, ok := kv.Uint("i32"); !ok || n != 7 {
		t.Error("i32", n, ok)
	}
	if _, ok := kv.Uint("i8"); ok {
		t.Error("negative accepted as uint")
	}
	if n, ok := kv.Int("i8"); !ok || n != -1 {
		t.Error("i8", n, ok)
	}
	if n, ok := kv.Uint("u64"); !ok || n != 1<<40 {
		t.Error("u64", n, ok)
	}
	if x, ok := kv.Float("f"); !ok || x != 0.5 {
		t.Error("f", x, ok)
	}
	if b, ok := kv.Bool("b"); !ok || !b {
		t.Error("b", b, ok)
	}
	if _, ok := kv.String("long"); ok {
		t.Error("string over KeepStringLen should not be kept")
	}
	if v, _ := kv.Get("long"); v.Len != uint64(len(long)) {
		t.Error("long length", v.Len)
	}
	if !p.HasChatTemplate() {
		t.Error("chat template longer than KeepStringLen not seen")
	}
	if n, ok := kv.ArrayLen("big"); !ok || n != 100 {
		t.Error("big", n, ok)
	}
	if v, _ := kv.Get("big"); v.Kept || v.Elems != nil {
		t.Error("array over KeepArrayLen kept")
	}
	if s, ok := kv.Strings("strs"); !ok || len(s) != 2 || s[1] != "q" {
		t.Error("strs", s, ok)
	}
	if _, ok := kv.Uint("missing"); ok {
		t.Error("missing key found")
	}
	if _, ok := kv.Int("missing"); ok {
		t.Error("missing key found")
	}
	if _, ok := kv.String("i32"); ok {
		t.Error("String on an int")
	}
	if p.Architecture() != "llama" || p.ContextLength() != 128 || p.BlockCount() != 2 {
		t.Error("helpers", p.Architecture(), p.ContextLength(), p.BlockCount())
	}
	if p.ParamCount() != 64+64 || p.TensorBytes() != 256+68 {
		t.Error("counts", p.ParamCount(), p.TensorBytes())
	}
	if got := p.FileType(); got != "F32" { // most bytes are F32
		t.Error("file type", got)
	}
	if keys := kv.Keys(); keys[0] != "general.architecture" || len(keys) != kv.Len() {
		t.Error("keys", keys)
	}
}

func TestFileTypeFromMetadata(t *testing.T) {
	f := baseFile()
	f.kvs = append(f.kvs, rawKV{"general.file_type", vU32(15)})
	p, err := parseBytes(f.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.FileType(); got != "Q4_K_M" {
		t.Errorf("got %q", got)
	}
}

func TestRetainedBudget(t *testing.T) {
	defer func(old uint64) { maxRetained = old }(maxRetained)
	maxRetained = 4096
	f := baseFile()
	f.kvs = append(f.kvs, rawKV{"s", vStr(strings.Repeat("x", 5000))})
	if _, err := parseBytes(f.bytes()); err == nil || !strings.Contains(err.Error(), "metadata too large") {
		t.Fatalf("got %v", err)
	}
	// Values that are not kept cost nothing.
	f = baseFile()
	f.kvs = append(f.kvs, rawKV{"s", vStr(strings.Repeat("x", KeepStringLen+1))})
	if _, err := parseBytes(f.bytes()); err != nil {
		t.Fatal(err)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadErrorIsWrapped(t *testing.T) {
	b := baseFile().bytes()
	boom := errors.New("disk on fire")
	_, err := Parse(&failingReader{b[:50], boom}, int64(len(b)))
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "read error at byte") {
		t.Fatalf("got %v", err)
	}
}
