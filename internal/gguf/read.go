package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"unsafe"
)

// valueCost is what one kept Value costs against maxRetained.
const valueCost = uint64(unsafe.Sizeof(Value{}))

// reader reads little-endian fields and refuses to go past size, so every
// length can be checked against the bytes that are really left before any
// work is done for it.
type reader struct {
	br       *bufio.Reader
	pos      uint64 // bytes consumed
	size     uint64 // declared file size
	retained uint64 // bytes held for the caller, against maxRetained
}

func errorf(format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

func (r *reader) left() uint64 { return r.size - r.pos }

// need fails unless n more bytes exist before the end of the file.
func (r *reader) need(n uint64) error {
	if n <= r.left() {
		return nil
	}
	end, carry := bits.Add64(r.pos, n, 0)
	if carry != 0 {
		end = math.MaxUint64
	}
	return errorf("truncated: header ends at byte %d of %d", end, r.size)
}

// ioErr explains a failed read of bytes that need() said were there.
func (r *reader) ioErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf("truncated: data ends before byte %d of the declared %d", r.pos+1, r.size)
	}
	return &Error{Msg: fmt.Sprintf("read error at byte %d: %v", r.pos, err), Err: err}
}

// next returns the next n (≤ 8) bytes and consumes them. The slice is only
// valid until the following read.
func (r *reader) next(n int) ([]byte, error) {
	if err := r.need(uint64(n)); err != nil {
		return nil, err
	}
	b, err := r.br.Peek(n)
	if err != nil {
		return nil, r.ioErr(err)
	}
	r.br.Discard(n) // cannot fail after a successful Peek
	r.pos += uint64(n)
	return b, nil
}

func (r *reader) u32() (uint32, error) {
	b, err := r.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (r *reader) u64() (uint64, error) {
	b, err := r.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) skip(n uint64) error {
	if err := r.need(n); err != nil {
		return err
	}
	for n > 0 {
		chunk := int(min(n, 1<<30))
		d, err := r.br.Discard(chunk)
		r.pos += uint64(d)
		n -= uint64(d)
		if err != nil {
			return r.ioErr(err)
		}
	}
	return nil
}

func (r *reader) retain(n uint64) error {
	r.retained += n
	if r.retained > maxRetained {
		return errorf("metadata too large: more than %d MiB of keys, names and short values", maxRetained>>20)
	}
	return nil
}

// str reads a length-prefixed string of at most limit bytes. It returns the
// text only when keep is true and the length is at most keepMax; otherwise
// the bytes are skipped and only the length is returned.
func (r *reader) str(limit uint64, keep bool, keepMax uint64) (s string, n uint64, kept bool, err error) {
	n, err = r.u64()
	if err != nil {
		return "", 0, false, err
	}
	if n > limit {
		return "", n, false, errorf("string length %d exceeds the limit of %d bytes", n, limit)
	}
	if err := r.need(n); err != nil {
		return "", n, false, err
	}
	if !keep || n > keepMax {
		return "", n, false, r.skip(n)
	}
	if err := r.retain(n); err != nil {
		return "", n, false, err
	}
	buf := make([]byte, n) // n ≤ keepMax and within the file: bounded
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return "", n, false, r.ioErr(err)
	}
	r.pos += n
	return string(buf), n, true, nil
}

// value reads a value of type t. depth is how many arrays enclose it.
// keep says whether the caller will hold on to the result.
func (r *reader) value(t ValueType, depth int, keep bool) (Value, error) {
	v := Value{Type: t}
	if sz := t.fixedSize(); sz > 0 {
		b, err := r.next(int(sz))
		if err != nil {
			return v, err
		}
		switch t {
		case TypeUint8, TypeBool:
			v.Uint = uint64(b[0])
		case TypeInt8:
			v.Int = int64(int8(b[0]))
		case TypeUint16:
			v.Uint = uint64(binary.LittleEndian.Uint16(b))
		case TypeInt16:
			v.Int = int64(int16(binary.LittleEndian.Uint16(b)))
		case TypeUint32:
			v.Uint = uint64(binary.LittleEndian.Uint32(b))
		case TypeInt32:
			v.Int = int64(int32(binary.LittleEndian.Uint32(b)))
		case TypeFloat32:
			v.Float = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case TypeUint64:
			v.Uint = binary.LittleEndian.Uint64(b)
		case TypeInt64:
			v.Int = int64(binary.LittleEndian.Uint64(b))
		case TypeFloat64:
			v.Float = math.Float64frombits(binary.LittleEndian.Uint64(b))
		}
		return v, nil
	}
	switch t {
	case TypeString:
		s, n, kept, err := r.str(MaxStringLen, keep, KeepStringLen)
		v.Str, v.Len, v.Kept = s, n, kept
		return v, err
	case TypeArray:
		return r.array(depth, keep)
	}
	return v, errorf("unknown value type %d", uint32(t))
}

func (r *reader) array(depth int, keep bool) (Value, error) {
	v := Value{Type: TypeArray}
	if depth >= MaxArrayDepth {
		return v, errorf("arrays nested more than %d deep", MaxArrayDepth)
	}
	et, err := r.u32()
	if err != nil {
		return v, err
	}
	v.ElemType = ValueType(et)
	if !v.ElemType.Valid() {
		return v, errorf("array of unknown value type %d", et)
	}
	if v.ElemType == TypeArray && depth+1 >= MaxArrayDepth {
		return v, errorf("arrays nested more than %d deep", MaxArrayDepth)
	}
	n, err := r.u64()
	if err != nil {
		return v, err
	}
	v.Len = n
	if n > MaxArrayLen {
		return v, errorf("array length %d exceeds the limit of %d elements", n, MaxArrayLen)
	}
	// n ≤ 2^24 and minSize ≤ 12, so the product cannot overflow.
	if need := n * v.ElemType.minSize(); need > r.left() {
		return v, errorf("array of %d %s needs at least %d bytes but only %d remain", n, v.ElemType, need, r.left())
	}
	v.Kept = keep && n <= KeepArrayLen
	if !v.Kept {
		if sz := v.ElemType.fixedSize(); sz > 0 {
			return v, r.skip(n * sz)
		}
	} else if err := r.retain(n * valueCost); err != nil {
		return v, err
	}
	for i := uint64(0); i < n; i++ {
		e, err := r.value(v.ElemType, depth+1, v.Kept)
		if err != nil {
			return v, err
		}
		if v.Kept {
			v.Elems = append(v.Elems, e)
		}
	}
	return v, nil
}

// Parse reads and validates a GGUF header from r. fileSize is the size of
// the whole file; it bounds every length in the header, so it must come
// from a trusted source such as fstat. Parse reads only the header, never
// the tensor data.
func Parse(r io.Reader, fileSize int64) (f *File, err error) {
	defer func() {
		// Parse must never panic on any input (that is what the fuzz target
		// checks). This is a last line of defense for the daemon, so a bug
		// here costs one file, not the process.
		if p := recover(); p != nil {
			f, err = nil, errorf("internal error parsing GGUF header: %v", p)
		}
	}()
	return parse(r, fileSize)
}

func parse(r io.Reader, fileSize int64) (*File, error) {
	if fileSize < 0 {
		return nil, errorf("invalid file size %d", fileSize)
	}
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	rd := &reader{br: br, size: uint64(fileSize)}
	f := &File{FileSize: fileSize}

	if err := readMagic(rd); err != nil {
		return nil, err
	}
	ver, err := rd.u32()
	if err != nil {
		return nil, err
	}
	if ver != 2 && ver != 3 {
		if sw := bits.ReverseBytes32(ver); sw == 2 || sw == 3 {
			return nil, errorf("unsupported GGUF version %d (a big-endian file? only little-endian versions 2 and 3 are supported)", ver)
		}
		return nil, errorf("unsupported GGUF version %d (only versions 2 and 3 are supported)", ver)
	}
	f.Version = ver

	nTensors, err := rd.u64()
	if err != nil {
		return nil, err
	}
	nKV, err := rd.u64()
	if err != nil {
		return nil, err
	}
	if nTensors > MaxTensors {
		return nil, errorf("tensor count %d exceeds the limit of %d", nTensors, MaxTensors)
	}
	if nKV > MaxKV {
		return nil, errorf("metadata key count %d exceeds the limit of %d", nKV, MaxKV)
	}
	// Smallest possible entries: a 1-byte key with a 1-byte value (14 bytes)
	// and a 1-byte name with one dimension (33 bytes). Counts that cannot
	// fit are rejected before anything is allocated for them.
	if need := nKV*14 + nTensors*33; need > rd.left() {
		return nil, errorf("truncated: %d keys and %d tensors need at least %d more bytes but only %d remain", nKV, nTensors, need, rd.left())
	}

	for i := uint64(0); i < nKV; i++ {
		if err := readKV(rd, &f.KV, i); err != nil {
			return nil, err
		}
	}
	if err := checkMetadata(f); err != nil {
		return nil, err
	}

	names := make(map[string]struct{})
	for i := uint64(0); i < nTensors; i++ {
		ti, err := readTensorInfo(rd, i)
		if err != nil {
			return nil, err
		}
		if _, dup := names[ti.Name]; dup {
			return nil, errorf("duplicate tensor name %q", ti.Name)
		}
		names[ti.Name] = struct{}{}
		if err := checkTensor(&ti, f.Alignment); err != nil {
			return nil, err
		}
		f.Tensors = append(f.Tensors, ti)
	}
	f.HeaderSize = rd.pos
	f.DataOffset = alignUp(rd.pos, f.Alignment)
	if err := checkLayout(f); err != nil {
		return nil, err
	}
	return f, nil
}

func readMagic(rd *reader) error {
	if rd.size == 0 {
		return errorf("not a GGUF file (empty)")
	}
	n := min(rd.size, 4)
	b, err := rd.next(int(n))
	if err != nil {
		return err
	}
	if string(b) != Magic[:n] {
		return errorf("not a GGUF file (magic %q)", b)
	}
	if n < 4 {
		return errorf("truncated: header ends at byte 4 of %d", rd.size)
	}
	return nil
}

func readKV(rd *reader, md *Metadata, i uint64) error {
	key, _, _, err := rd.str(MaxKeyLen, true, MaxKeyLen)
	if err != nil {
		return within(err, "key #%d", i)
	}
	if key == "" {
		return errorf("key #%d is empty", i)
	}
	t, err := rd.u32()
	if err != nil {
		return within(err, "key %q", key)
	}
	if !ValueType(t).Valid() {
		return errorf("key %q has unknown value type %d", key, t)
	}
	v, err := rd.value(ValueType(t), 0, true)
	if err != nil {
		return within(err, "key %q", key)
	}
	if err := rd.retain(valueCost); err != nil {
		return err
	}
	if !md.add(key, v) {
		return errorf("duplicate metadata key %q", key)
	}
	return nil
}

func readTensorInfo(rd *reader, i uint64) (TensorInfo, error) {
	var ti TensorInfo
	name, _, _, err := rd.str(MaxTensorNameLen, true, MaxTensorNameLen)
	if err != nil {
		return ti, within(err, "name of tensor #%d", i)
	}
	if name == "" {
		return ti, errorf("tensor #%d has an empty name", i)
	}
	ti.Name = name
	nd, err := rd.u32()
	if err != nil {
		return ti, within(err, "tensor %q", name)
	}
	if nd < 1 || nd > MaxDims {
		return ti, errorf("tensor %q has %d dimensions (must be 1 to %d)", name, nd, MaxDims)
	}
	if err := rd.retain(uint64(nd) * 8); err != nil {
		return ti, err
	}
	ti.Dims = make([]uint64, nd) // nd ≤ 4
	for j := range ti.Dims {
		if ti.Dims[j], err = rd.u64(); err != nil {
			return ti, within(err, "tensor %q", name)
		}
	}
	t, err := rd.u32()
	if err != nil {
		return ti, within(err, "tensor %q", name)
	}
	ti.Type = GGMLType(t)
	if ti.Offset, err = rd.u64(); err != nil {
		return ti, within(err, "tensor %q", name)
	}
	return ti, nil
}

// within appends where an error happened, keeping the message on one line
// and its start (e.g. "truncated: ...") stable for callers that match it.
func within(err error, format string, args ...any) error {
	var e *Error
	if errors.As(err, &e) && e.Path == "" {
		return &Error{Msg: e.Msg + " (in " + fmt.Sprintf(format, args...) + ")", Err: e.Err}
	}
	return err
}

func alignUp(n, a uint64) uint64 {
	if r := n % a; r != 0 {
		return n + (a - r) // n is a header position, far from overflow
	}
	return n
}
