package gguf

import (
	"errors"
	"math"
)

// File is a parsed and validated GGUF header.
type File struct {
	Path       string // set by Check; empty after Parse
	Version    uint32
	Alignment  uint64
	HeaderSize uint64 // bytes of header before the alignment padding
	DataOffset uint64 // where tensor data starts: HeaderSize rounded up to Alignment
	FileSize   int64
	KV         Metadata
	Tensors    []TensorInfo
}

// TensorInfo describes one tensor. Dims are listed fastest-varying first,
// as in ggml: a matrix with Dims [n_in, n_out] is n_out rows of n_in values.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   GGMLType
	Offset uint64 // relative to File.DataOffset
	Size   uint64 // bytes
}

// Elements is the number of values in the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d // validated not to overflow
	}
	return n
}

// Value is one metadata value. Which fields are set depends on Type.
type Value struct {
	Type  ValueType
	Uint  uint64  // unsigned integers, and bool as 0 or 1
	Int   int64   // signed integers
	Float float64 // float32 and float64
	Str   string  // strings when Kept

	// Len is a string's length in bytes or an array's number of elements.
	Len uint64
	// Kept reports whether Str (for a string) or Elems (for an array) holds
	// the whole value. Long strings and arrays are skipped to bound memory.
	Kept     bool
	ElemType ValueType // arrays only
	Elems    []Value   // arrays only, when Kept
}

// AsUint returns any integer value that is not negative. Bools are not
// accepted even though Uint holds them as 0/1: a count stored as a bool is a
// broken file, not a small number.
func (v Value) AsUint() (uint64, bool) {
	switch v.Type {
	case TypeUint8, TypeUint16, TypeUint32, TypeUint64:
		return v.Uint, true
	case TypeInt8, TypeInt16, TypeInt32, TypeInt64:
		if v.Int >= 0 {
			return uint64(v.Int), true
		}
	}
	return 0, false
}

// AsInt returns any integer value that fits in an int64.
func (v Value) AsInt() (int64, bool) {
	switch v.Type {
	case TypeUint8, TypeUint16, TypeUint32, TypeUint64:
		if v.Uint <= math.MaxInt64 {
			return int64(v.Uint), true
		}
	case TypeInt8, TypeInt16, TypeInt32, TypeInt64:
		return v.Int, true
	}
	return 0, false
}

// AsFloat returns a float32 or float64 value.
func (v Value) AsFloat() (float64, bool) {
	if v.Type == TypeFloat32 || v.Type == TypeFloat64 {
		return v.Float, true
	}
	return 0, false
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, bool) {
	if v.Type == TypeBool {
		return v.Uint != 0, true
	}
	return false, false
}

// AsString returns a string value that was kept in memory.
func (v Value) AsString() (string, bool) {
	if v.Type == TypeString && v.Kept {
		return v.Str, true
	}
	return "", false
}

// KV is one metadata entry.
type KV struct {
	Key   string
	Value Value
}

// Metadata is a file's key-value section, in file order.
type Metadata struct {
	list  []KV
	index map[string]int
}

func (m *Metadata) add(key string, v Value) bool {
	if m.index == nil {
		m.index = make(map[string]int)
	}
	if _, dup := m.index[key]; dup {
		return false
	}
	m.index[key] = len(m.list)
	m.list = append(m.list, KV{key, v})
	return true
}

// Len is the number of entries.
func (m Metadata) Len() int { return len(m.list) }

// All returns the entries in file order. The slice must not be modified.
func (m Metadata) All() []KV { return m.list }

// Keys returns the keys in file order.
func (m Metadata) Keys() []string {
	keys := make([]string, len(m.list))
	for i, kv := range m.list {
		keys[i] = kv.Key
	}
	return keys
}

// Get returns the value stored under key. The accessors below check ok
// before converting: the zero Value has type uint8 and would read as 0.
func (m Metadata) Get(key string) (Value, bool) {
	i, ok := m.index[key]
	if !ok {
		return Value{}, false
	}
	return m.list[i].Value, true
}

// String returns a string value; false if absent, not a string, or longer
// than KeepStringLen (such strings are not held in memory).
func (m Metadata) String(key string) (string, bool) {
	if v, ok := m.Get(key); ok {
		return v.AsString()
	}
	return "", false
}

// Uint returns an integer value of any width or signedness that is >= 0.
func (m Metadata) Uint(key string) (uint64, bool) {
	if v, ok := m.Get(key); ok {
		return v.AsUint()
	}
	return 0, false
}

// Int returns an integer value of any width that fits in an int64.
func (m Metadata) Int(key string) (int64, bool) {
	if v, ok := m.Get(key); ok {
		return v.AsInt()
	}
	return 0, false
}

// Float returns a float32 or float64 value.
func (m Metadata) Float(key string) (float64, bool) {
	if v, ok := m.Get(key); ok {
		return v.AsFloat()
	}
	return 0, false
}

// Bool returns a bool value.
func (m Metadata) Bool(key string) (bool, bool) {
	if v, ok := m.Get(key); ok {
		return v.AsBool()
	}
	return false, false
}

// ArrayLen returns the number of elements of an array value.
func (m Metadata) ArrayLen(key string) (uint64, bool) {
	v, ok := m.Get(key)
	if !ok || v.Type != TypeArray {
		return 0, false
	}
	return v.Len, true
}

// Strings returns a string array that was kept in memory (at most
// KeepArrayLen elements, each at most KeepStringLen bytes).
func (m Metadata) Strings(key string) ([]string, bool) {
	v, ok := m.Get(key)
	if !ok || v.Type != TypeArray || v.ElemType != TypeString || !v.Kept {
		return nil, false
	}
	out := make([]string, len(v.Elems))
	for i, e := range v.Elems {
		s, ok := e.AsString()
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// Error is a problem with a GGUF file. Error() is a single line that starts
// with the path when there is one, or whose Msg names it.
type Error struct {
	Path string
	Msg  string
	Err  error // the underlying cause, if any (an I/O error, ErrNoWeights)
}

func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoWeights is wrapped by RequireWeights' error.
var ErrNoWeights = errors.New("gguf: file has no tensors")
