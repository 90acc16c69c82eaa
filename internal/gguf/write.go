package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
)

// WriteKV is one metadata entry to write. Value may be a string, bool,
// uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32,
// float64, or a slice of one of those (string, float32, int32, uint32,
// int64, uint64, float64, bool, uint8, int8).
type WriteKV struct {
	Key   string
	Value any
}

// WriteTensor is one tensor to write. Write must write exactly the tensor's
// size in bytes (TensorSize(Type, Dims)); the data is streamed, so a large
// model never has to be held in memory.
type WriteTensor struct {
	Name  string
	Type  GGMLType
	Dims  []uint64
	Write func(w io.Writer) error
}

// layout is what Write will produce, computed before any byte is written.
type layout struct {
	header    []byte // everything up to the end of the tensor infos
	alignment uint64
	sizes     []uint64 // per tensor, unpadded
	total     uint64   // whole file
}

func plan(kvs []WriteKV, tensors []WriteTensor) (*layout, error) {
	if len(kvs) > MaxKV || len(tensors) > MaxTensors {
		return nil, fmt.Errorf("gguf: %d keys and %d tensors exceed the limits", len(kvs), len(tensors))
	}
	l := &layout{alignment: DefaultAlignment}
	h := []byte(Magic)
	h = binary.LittleEndian.AppendUint32(h, 3)
	h = binary.LittleEndian.AppendUint64(h, uint64(len(tensors)))
	h = binary.LittleEndian.AppendUint64(h, uint64(len(kvs)))
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if kv.Key == "" || len(kv.Key) > MaxKeyLen || seen[kv.Key] {
			return nil, fmt.Errorf("gguf: empty, too long or duplicate key %q", kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 || a > MaxAlignment {
				return nil, fmt.Errorf("gguf: general.alignment must be a uint32 power of two up to %d, got %#v", MaxAlignment, kv.Value)
			}
			l.alignment = uint64(a)
		}
		h = appendString(h, kv.Key)
		var err error
		if h, err = appendValue(h, kv.Value); err != nil {
			return nil, fmt.Errorf("gguf: key %q: %w", kv.Key, err)
		}
	}
	names := make(map[string]bool, len(tensors))
	var off uint64
	for _, t := range tensors {
		if t.Name == "" || len(t.Name) > MaxTensorNameLen || names[t.Name] {
			return nil, fmt.Errorf("gguf: empty, too long or duplicate tensor name %q", t.Name)
		}
		names[t.Name] = true
		_, size, err := tensorSize(t.Type, t.Dims)
		if err != nil {
			return nil, fmt.Errorf("gguf: tensor %q %v", t.Name, err)
		}
		if t.Write == nil {
			return nil, fmt.Errorf("gguf: tensor %q has no Write function", t.Name)
		}
		h = appendString(h, t.Name)
		h = binary.LittleEndian.AppendUint32(h, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			h = binary.LittleEndian.AppendUint64(h, d)
		}
		h = binary.LittleEndian.AppendUint32(h, uint32(t.Type))
		h = binary.LittleEndian.AppendUint64(h, off)
		l.sizes = append(l.sizes, size)
		off += alignUp(size, l.alignment)
		if off > math.MaxInt64 {
			return nil, fmt.Errorf("gguf: tensor data exceeds 2^63 bytes")
		}
	}
	l.header = h
	l.total = alignUp(uint64(len(h)), l.alignment) + off
	return l, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

func appendValue(b []byte, v any) ([]byte, error) {
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Slice && rv.Len() > MaxArrayLen {
		return b, fmt.Errorf("array of %d elements exceeds %d", rv.Len(), MaxArrayLen)
	}
	le := binary.LittleEndian
	tag := func(t ValueType) { b = le.AppendUint32(b, uint32(t)) }
	arr := func(t ValueType, n int) {
		tag(TypeArray)
		b = le.AppendUint32(b, uint32(t))
		b = le.AppendUint64(b, uint64(n))
	}
	switch x := v.(type) {
	case string:
		if len(x) > MaxStringLen {
			return b, fmt.Errorf("string of %d bytes exceeds %d", len(x), MaxStringLen)
		}
		tag(TypeString)
		b = appendString(b, x)
	case bool:
		tag(TypeBool)
		b = append(b, boolByte(x))
	case uint8:
		tag(TypeUint8)
		b = append(b, x)
	case int8:
		tag(TypeInt8)
		b = append(b, byte(x))
	case uint16:
		tag(TypeUint16)
		b = le.AppendUint16(b, x)
	case int16:
		tag(TypeInt16)
		b = le.AppendUint16(b, uint16(x))
	case uint32:
		tag(TypeUint32)
		b = le.AppendUint32(b, x)
	case int32:
		tag(TypeInt32)
		b = le.AppendUint32(b, uint32(x))
	case uint64:
		tag(TypeUint64)
		b = le.AppendUint64(b, x)
	case int64:
		tag(TypeInt64)
		b = le.AppendUint64(b, uint64(x))
	case float32:
		tag(TypeFloat32)
		b = le.AppendUint32(b, math.Float32bits(x))
	case float64:
		tag(TypeFloat64)
		b = le.AppendUint64(b, math.Float64bits(x))
	case []string:
		arr(TypeString, len(x))
		for _, s := range x {
			if len(s) > MaxStringLen {
				return b, fmt.Errorf("string of %d bytes exceeds %d", len(s), MaxStringLen)
			}
			b = appendString(b, s)
		}
	case []float32:
		arr(TypeFloat32, len(x))
		b = AppendF32(b, x)
	case []float64:
		arr(TypeFloat64, len(x))
		for _, e := range x {
			b = le.AppendUint64(b, math.Float64bits(e))
		}
	case []int32:
		arr(TypeInt32, len(x))
		for _, e := range x {
			b = le.AppendUint32(b, uint32(e))
		}
	case []uint32:
		arr(TypeUint32, len(x))
		for _, e := range x {
			b = le.AppendUint32(b, e)
		}
	case []int64:
		arr(TypeInt64, len(x))
		for _, e := range x {
			b = le.AppendUint64(b, uint64(e))
		}
	case []uint64:
		arr(TypeUint64, len(x))
		for _, e := range x {
			b = le.AppendUint64(b, e)
		}
	case []bool:
		arr(TypeBool, len(x))
		for _, e := range x {
			b = append(b, boolByte(e))
		}
	case []uint8:
		arr(TypeUint8, len(x))
		b = append(b, x...)
	case []int8:
		arr(TypeInt8, len(x))
		for _, e := range x {
			b = append(b, byte(e))
		}
	default:
		return b, fmt.Errorf("unsupported value type %T", v)
	}
	return b, nil
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// EncodedSize returns the exact size in bytes of the file Write would
// produce, without calling any tensor's Write function.
func EncodedSize(kvs []WriteKV, tensors []WriteTensor) (int64, error) {
	l, err := plan(kvs, tensors)
	if err != nil {
		return 0, err
	}
	return int64(l.total), nil
}

// countingWriter passes through at most limit bytes and counts them, so a
// tensor callback that writes too much or too little is caught before the
// file's layout is silently broken.
type countingWriter struct {
	w     io.Writer
	n     uint64
	limit uint64
	name  string
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > c.limit-c.n {
		return 0, fmt.Errorf("gguf: tensor %q: Write wrote more than its %d bytes", c.name, c.limit)
	}
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

var zeros [MaxAlignment]byte

func pad(w io.Writer, n, alignment uint64) error {
	if p := alignUp(n, alignment) - n; p > 0 {
		_, err := w.Write(zeros[:p])
		return err
	}
	return nil
}

// Write writes a GGUF version 3 file: the metadata in order, the tensor
// infos, then each tensor's data, each padded to the alignment (32, or
// general.alignment when given as a uint32).
func Write(w io.Writer, kvs []WriteKV, tensors []WriteTensor) error {
	l, err := plan(kvs, tensors)
	if err != nil {
		return err
	}
	bw, ok := w.(*bufio.Writer)
	if !ok {
		bw = bufio.NewWriterSize(w, 1<<20)
	}
	if _, err := bw.Write(l.header); err != nil {
		return err
	}
	if err := pad(bw, uint64(len(l.header)), l.alignment); err != nil {
		return err
	}
	for i, t := range tensors {
		cw := &countingWriter{w: bw, limit: l.sizes[i], name: t.Name}
		if err := t.Write(cw); err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
		}
		if cw.n != l.sizes[i] {
			return fmt.Errorf("gguf: tensor %q: Write wrote %d bytes, want %d", t.Name, cw.n, l.sizes[i])
		}
		if err := pad(bw, cw.n, l.alignment); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFile writes a GGUF file at path atomically: the data goes to a
// temporary file in the same directory, which is synced and then renamed
// over path, so path never holds a half-written model that a concurrent
// reader or a later cache check could mistake for a good one.
func WriteFile(path string, kvs []WriteKV, tensors []WriteTensor) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = Write(tmp, kvs, tensors); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable; failure here is not worth failing
	// the write for (some filesystems cannot sync directories).
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
