// Package gguf reads, validates and writes GGUF model files.
//
// The reader treats its input as hostile: llama.cpp's own parser trusts many
// counts and sizes, so rbee checks every header field here first, in bounded
// memory, and turns anything suspicious into a one-line error instead of a
// crash inside cgo. The writer exists so tests and benchmarks can make model
// files without downloads.
package gguf

import "fmt"

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// Limits on what a header may declare. They are far above anything a real
// model needs; their job is to make hostile counts fail fast.
const (
	MaxTensors       = 1_000_000
	MaxKV            = 100_000
	MaxStringLen     = 16 << 20 // bytes in one string value
	MaxArrayLen      = 16 << 20 // elements in one array
	MaxArrayDepth    = 2        // an array of arrays is allowed, no deeper
	MaxTensorNameLen = 4096
	MaxKeyLen        = 64 << 10
	MaxDims          = 4
	MaxAlignment     = 1 << 20
	DefaultAlignment = 32
	MaxBlockCount    = 512

	// KeepStringLen and KeepArrayLen bound what a parsed File holds on to:
	// longer strings keep only their length, longer arrays (the tokenizer's
	// vocabulary, scores, merges) keep only their element type and length.
	KeepStringLen = 64 << 10
	KeepArrayLen  = 64
)

// maxRetained caps the bytes of keys, kept values and tensor names a parse
// may hold, so a header made of a hundred thousand long keys cannot turn
// into gigabytes of heap. Real headers retain well under 1 MiB. A variable
// only so that tests can reach it without a 64 MiB file.
var maxRetained uint64 = 64 << 20

// ValueType is the type tag of a metadata value.
type ValueType uint32

const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Valid reports whether t is a type GGUF defines.
func (t ValueType) Valid() bool { return t <= TypeFloat64 }

// fixedSize is the encoded size of a scalar type, 0 for string and array.
func (t ValueType) fixedSize() uint64 {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// minSize is the fewest bytes one value of type t can take in a file; it
// lets an array's declared length be checked against the bytes left.
func (t ValueType) minSize() uint64 {
	switch t {
	case TypeString:
		return 8 // the length prefix
	case TypeArray:
		return 12 // element type + length
	}
	return t.fixedSize()
}

// GGMLType is a tensor element type, numbered as in ggml.h.
type GGMLType uint32

const (
	TypeF32     GGMLType = 0
	TypeF16     GGMLType = 1
	TypeQ4_0    GGMLType = 2
	TypeQ4_1    GGMLType = 3
	TypeQ5_0    GGMLType = 6
	TypeQ5_1    GGMLType = 7
	TypeQ8_0    GGMLType = 8
	TypeQ8_1    GGMLType = 9
	TypeQ2_K    GGMLType = 10
	TypeQ3_K    GGMLType = 11
	TypeQ4_K    GGMLType = 12
	TypeQ5_K    GGMLType = 13
	TypeQ6_K    GGMLType = 14
	TypeQ8_K    GGMLType = 15
	TypeIQ2_XXS GGMLType = 16
	TypeIQ2_XS  GGMLType = 17
	TypeIQ3_XXS GGMLType = 18
	TypeIQ1_S   GGMLType = 19
	TypeIQ4_NL  GGMLType = 20
	TypeIQ3_S   GGMLType = 21
	TypeIQ2_S   GGMLType = 22
	TypeIQ4_XS  GGMLType = 23
	TypeI8      GGMLType = 24
	TypeI16     GGMLType = 25
	TypeI32     GGMLType = 26
	TypeI64     GGMLType = 27
	TypeF64     GGMLType = 28
	TypeIQ1_M   GGMLType = 29
	TypeBF16    GGMLType = 30
	TypeTQ1_0   GGMLType = 34
	TypeTQ2_0   GGMLType = 35
	TypeMXFP4   GGMLType = 39
)

type typeTraits struct {
	name      string
	blockSize uint64 // elements per block
	typeSize  uint64 // bytes per block
}

// ggmlTypes mirrors type_traits in ggml.c (ollama v0.17.4); the byte sizes
// are the static_asserts on the block structs in ggml-common.h. Numbers that
// ggml has retired (4, 5, 31-33, 36-38) are absent, so files using them are
// rejected just as gguf.cpp rejects them.
var ggmlTypes = map[GGMLType]typeTraits{
	TypeF32:     {"F32", 1, 4},
	TypeF16:     {"F16", 1, 2},
	TypeQ4_0:    {"Q4_0", 32, 18},
	TypeQ4_1:    {"Q4_1", 32, 20},
	TypeQ5_0:    {"Q5_0", 32, 22},
	TypeQ5_1:    {"Q5_1", 32, 24},
	TypeQ8_0:    {"Q8_0", 32, 34},
	TypeQ8_1:    {"Q8_1", 32, 36},
	TypeQ2_K:    {"Q2_K", 256, 84},
	TypeQ3_K:    {"Q3_K", 256, 110},
	TypeQ4_K:    {"Q4_K", 256, 144},
	TypeQ5_K:    {"Q5_K", 256, 176},
	TypeQ6_K:    {"Q6_K", 256, 210},
	TypeQ8_K:    {"Q8_K", 256, 292},
	TypeIQ2_XXS: {"IQ2_XXS", 256, 66},
	TypeIQ2_XS:  {"IQ2_XS", 256, 74},
	TypeIQ3_XXS: {"IQ3_XXS", 256, 98},
	TypeIQ1_S:   {"IQ1_S", 256, 50},
	TypeIQ4_NL:  {"IQ4_NL", 32, 18},
	TypeIQ3_S:   {"IQ3_S", 256, 110},
	TypeIQ2_S:   {"IQ2_S", 256, 82},
	TypeIQ4_XS:  {"IQ4_XS", 256, 136},
	TypeI8:      {"I8", 1, 1},
	TypeI16:     {"I16", 1, 2},
	TypeI32:     {"I32", 1, 4},
	TypeI64:     {"I64", 1, 8},
	TypeF64:     {"F64", 1, 8},
	TypeIQ1_M:   {"IQ1_M", 256, 56},
	TypeBF16:    {"BF16", 1, 2},
	TypeTQ1_0:   {"TQ1_0", 256, 54},
	TypeTQ2_0:   {"TQ2_0", 256, 66},
	TypeMXFP4:   {"MXFP4", 32, 17},
}

// Known reports whether t is a ggml type this package can size.
func (t GGMLType) Known() bool { _, ok := ggmlTypes[t]; return ok }

func (t GGMLType) String() string {
	if tr, ok := ggmlTypes[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// BlockSize is the number of elements per quantization block (1 for plain
// number types, 0 for unknown types).
func (t GGMLType) BlockSize() uint64 { return ggmlTypes[t].blockSize }

// TypeSize is the number of bytes per block (0 for unknown types).
func (t GGMLType) TypeSize() uint64 { return ggmlTypes[t].typeSize }

// fileTypeNames maps general.file_type (llama_ftype in llama.h) to the
// names users know quantizations by.
var fileTypeNames = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
	15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS",
	20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S",
	25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M",
	30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
	38: "MXFP4_MOE",
}

// FileTypeName returns the quantization name of a general.file_type value.
func FileTypeName(ftype uint64) (string, bool) {
	n, ok := fileTypeNames[ftype]
	return n, ok
}
