package gguf

import (
	"bytes"
	"math"
	"testing"
)

func FuzzParse(f *testing.F) {
	kvs, tensors, _ := sampleFile()
	var buf bytes.Buffer
	if err := Write(&buf, kvs, tensors); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(baseFile().bytes())
	f.Add(baseFile().header())
	for _, mut := range []func(*rawFile){
		func(r *rawFile) { r.version = 1 },
		func(r *rawFile) { r.nTensors = ptr(math.MaxUint64) },
		func(r *rawFile) { r.nKV = ptr(3) },
		func(r *rawFile) { r.kvs[0].val = tagged(TypeString, le.AppendUint64(nil, 1<<63)) },
		func(r *rawFile) {
			r.kvs[4].val = tagged(TypeArray, arrHead(TypeArray, 1), arrHead(TypeArray, 1), arrHead(TypeUint8, 0))
		},
		func(r *rawFile) { r.kvs[1].val = vU32(3) },
		func(r *rawFile) { r.tensors[1].off = 224 },
		func(r *rawFile) { r.tensors[0].dims = []uint64{1 << 62, 4} },
	} {
		r := baseFile()
		mut(&r)
		f.Add(r.bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// parse, not Parse: a panic must fail the fuzzer, not be recovered.
		p, err := parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if p != nil {
				t.Fatal("file and error both returned")
			}
			if bytes.ContainsAny([]byte(err.Error()), "\n\r") {
				t.Fatalf("multi-line error %q", err)
			}
		} else {
			checkInvariants(t, p, len(data))
		}
		// The same bytes as a stream that ends before its declared size.
		parse(bytes.NewReader(data), int64(len(data))+100)
	})
}

func checkInvariants(t *testing.T, f *File, size int) {
	if f.Alignment == 0 || f.Alignment&(f.Alignment-1) != 0 || f.DataOffset%f.Alignment != 0 {
		t.Fatalf("alignment %d, data at %d", f.Alignment, f.DataOffset)
	}
	for _, ti := range f.Tensors {
		if ti.Offset%f.Alignment != 0 || f.DataOffset+ti.Offset+ti.Size > uint64(size) {
			t.Fatalf("tensor %q [%d,+%d) outside %d", ti.Name, ti.Offset, ti.Size, size)
		}
		if n, err := TensorSize(ti.Type, ti.Dims); err != nil || n != ti.Size {
			t.Fatalf("tensor %q size %d vs %d (%v)", ti.Name, ti.Size, n, err)
		}
	}
	_ = f.FileType()
	_ = f.ParamCount()
	_ = f.ContextLength()
	_ = f.HasChatTemplate()
	for _, kv := range f.KV.All() {
		f.KV.Uint(kv.Key)
		f.KV.Strings(kv.Key)
	}
}
