package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
)

// The writer refuses to produce broken files, so the tests build raw
// headers by hand to be able to break every field.

var le = binary.LittleEndian

type rawKV struct {
	key string
	val []byte // type tag followed by the encoded value
}

type rawTensor struct {
	name string
	dims []uint64
	typ  uint32
	off  uint64
}

type rawFile struct {
	magic    string
	version  uint32
	nTensors *uint64 // overrides len(tensors)
	nKV      *uint64 // overrides len(kvs)
	kvs      []rawKV
	tensors  []rawTensor
	align    uint64 // for placing the data section; 32 if 0
	dataLen  int    // bytes after the aligned header; -1 = none (no padding either)
	tail     []byte // appended after the tensor infos instead of padding+data
}

func ptr(v uint64) *uint64 { return &v }

func rawStr(s string) []byte {
	b := le.AppendUint64(nil, uint64(len(s)))
	return append(b, s...)
}

func tagged(t ValueType, payload ...[]byte) []byte {
	b := le.AppendUint32(nil, uint32(t))
	for _, p := range payload {
		b = append(b, p...)
	}
	return b
}

func vU32(v uint32) []byte  { return tagged(TypeUint32, le.AppendUint32(nil, v)) }
func vU64(v uint64) []byte  { return tagged(TypeUint64, le.AppendUint64(nil, v)) }
func vI32(v int32) []byte   { return tagged(TypeInt32, le.AppendUint32(nil, uint32(v))) }
func vF32(v float32) []byte { return tagged(TypeFloat32, le.AppendUint32(nil, math.Float32bits(v))) }
func vStr(s string) []byte  { return tagged(TypeString, rawStr(s)) }

// arrHead is an array value's header: element type and length.
func arrHead(et ValueType, n uint64) []byte {
	return le.AppendUint64(le.AppendUint32(nil, uint32(et)), n)
}

func vArr(et ValueType, n uint64, elems ...[]byte) []byte {
	return tagged(TypeArray, append([][]byte{arrHead(et, n)}, elems...)...)
}

func (f rawFile) header() []byte {
	b := []byte(f.magic)
	b = le.AppendUint32(b, f.version)
	nt, nk := uint64(len(f.tensors)), uint64(len(f.kvs))
	if f.nTensors != nil {
		nt = *f.nTensors
	}
	if f.nKV != nil {
		nk = *f.nKV
	}
	b = le.AppendUint64(b, nt)
	b = le.AppendUint64(b, nk)
	for _, kv := range f.kvs {
		b = append(b, rawStr(kv.key)...)
		b = append(b, kv.val...)
	}
	for _, t := range f.tensors {
		b = append(b, rawStr(t.name)...)
		b = le.AppendUint32(b, uint32(len(t.dims)))
		for _, d := range t.dims {
			b = le.AppendUint64(b, d)
		}
		b = le.AppendUint32(b, t.typ)
		b = le.AppendUint64(b, t.off)
	}
	return b
}

func (f rawFile) bytes() []byte {
	b := f.header()
	if f.tail != nil {
		return append(b, f.tail...)
	}
	if f.dataLen < 0 {
		return b
	}
	a := f.align
	if a == 0 {
		a = 32
	}
	b = append(b, make([]byte, int(alignUp(uint64(len(b)), a))-len(b))...)
	return append(b, bytes.Repeat([]byte{0xAB}, f.dataLen)...)
}

// baseFile is a small valid file: two tensors, F32 [32,2] (256 bytes) at 0
// and Q8_0 [64] (68 bytes) at 256, so the data section is 324 bytes.
func baseFile() rawFile {
	return rawFile{
		magic:   "GGUF",
		version: 3,
		kvs: []rawKV{
			{"general.architecture", vStr("llama")},
			{"general.alignment", vU32(32)},
			{"llama.block_count", vU32(2)},
			{"llama.context_length", vU32(128)},
			{"tokenizer.ggml.scores", vArr(TypeFloat32, 3, le.AppendUint32(nil, 0), le.AppendUint32(nil, 0), le.AppendUint32(nil, 0))},
		},
		tensors: []rawTensor{
			{"a", []uint64{32, 2}, uint32(TypeF32), 0},
			{"b", []uint64{64}, uint32(TypeQ8_0), 256},
		},
		dataLen: 324,
	}
}

func parseBytes(b []byte) (*File, error) { return Parse(bytes.NewReader(b), int64(len(b))) }
