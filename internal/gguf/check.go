package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// Check opens path (a regular file only: see Open), parses its header and
// validates it; see Parse. Errors are one line and name the path.
func Check(path string) (*File, error) {
	fh, st, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f, err := Parse(bufio.NewReaderSize(fh, 64<<10), st.Size())
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			c := *e
			c.Path = path
			return nil, &c
		}
		return nil, &Error{Path: path, Msg: err.Error(), Err: err}
	}
	f.Path = path
	return f, nil
}

// checkMetadata validates the keys that change how the rest of the file is
// read, or that llama.cpp trusts without checking.
func checkMetadata(f *File) error {
	f.Alignment = DefaultAlignment
	if v, ok := f.KV.Get("general.alignment"); ok {
		// gguf.cpp reads it with gguf_get_val_u32, which aborts the process
		// on any other type.
		if v.Type != TypeUint32 {
			return errorf("general.alignment has type %s, want uint32", v.Type)
		}
		a := v.Uint
		if a == 0 || a&(a-1) != 0 || a > MaxAlignment {
			return errorf("general.alignment %d is not a power of two between 1 and %d", a, MaxAlignment)
		}
		f.Alignment = a
	}
	av, ok := f.KV.Get("general.architecture")
	if !ok {
		return nil
	}
	if av.Type != TypeString {
		return errorf("general.architecture has type %s, want string", av.Type)
	}
	arch, ok := av.AsString()
	if !ok {
		return errorf("general.architecture is %d bytes long", av.Len)
	}
	// llama.cpp sizes per-layer arrays from block_count; huge values have
	// caused out-of-bounds writes there.
	key := arch + ".block_count"
	if v, ok := f.KV.Get(key); ok {
		n, ok := v.AsUint()
		if !ok {
			return errorf("%s is not a non-negative integer (type %s)", key, v.Type)
		}
		if n > MaxBlockCount {
			return errorf("%s %d exceeds the limit of %d", key, n, MaxBlockCount)
		}
	}
	return nil
}

// tensorSize returns the number of elements and bytes of a tensor of type t
// with the given dims, or an error if they are invalid for ggml.
func tensorSize(t GGMLType, dims []uint64) (elems, size uint64, err error) {
	tr, ok := ggmlTypes[t]
	if !ok {
		return 0, 0, fmt.Errorf("has unknown ggml type %d", uint32(t))
	}
	if len(dims) < 1 || len(dims) > MaxDims {
		return 0, 0, fmt.Errorf("has %d dimensions (must be 1 to %d)", len(dims), MaxDims)
	}
	elems = 1
	for i, d := range dims {
		if d < 1 || d > math.MaxInt64 {
			return 0, 0, fmt.Errorf("dimension %d is %d (must be 1 to 2^63-1)", i, d)
		}
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, 0, fmt.Errorf("has shape %v whose element count overflows int64", dims)
		}
		elems = lo
	}
	if dims[0]%tr.blockSize != 0 {
		return 0, 0, fmt.Errorf("has %d elements per row, not a multiple of the %s block size %d", dims[0], t, tr.blockSize)
	}
	// elems is a multiple of blockSize because dims[0] is.
	hi, size := bits.Mul64(elems/tr.blockSize, tr.typeSize)
	if hi != 0 || size > math.MaxInt64 {
		return 0, 0, fmt.Errorf("has shape %v whose size in bytes overflows int64", dims)
	}
	return elems, size, nil
}

// TensorSize returns the number of bytes a tensor of type t and these dims
// takes in a file.
func TensorSize(t GGMLType, dims []uint64) (uint64, error) {
	_, size, err := tensorSize(t, dims)
	return size, err
}

func checkTensor(ti *TensorInfo, alignment uint64) error {
	_, size, err := tensorSize(ti.Type, ti.Dims)
	if err != nil {
		return errorf("tensor %q %v", ti.Name, err)
	}
	ti.Size = size
	if ti.Offset%alignment != 0 {
		return errorf("tensor %q offset %d is not a multiple of the alignment %d", ti.Name, ti.Offset, alignment)
	}
	return nil
}

// checkLayout checks that all tensor data lies inside the file and that no
// two tensors share bytes. It runs once the header's end, and so the start
// of the data section, is known.
func checkLayout(f *File) error {
	size := uint64(f.FileSize)
	for _, t := range f.Tensors {
		start, c1 := bits.Add64(f.DataOffset, t.Offset, 0)
		end, c2 := bits.Add64(start, t.Size, 0)
		if c1|c2 != 0 {
			return errorf("tensor %q data offset %d + size %d overflows", t.Name, t.Offset, t.Size)
		}
		if end > size {
			return errorf("tensor %q data [%d, %d) lies past the end of the file (size %d)", t.Name, start, end, size)
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmpU64(f.Tensors[a].Offset, f.Tensors[b].Offset)
	})
	for i := 1; i < len(order); i++ {
		p, c := &f.Tensors[order[i-1]], &f.Tensors[order[i]]
		if p.Offset+p.Size > c.Offset { // both lie within the file: no overflow
			return errorf("tensors %q [%d, %d) and %q [%d, %d) overlap",
				p.Name, f.DataOffset+p.Offset, f.DataOffset+p.Offset+p.Size,
				c.Name, f.DataOffset+c.Offset, f.DataOffset+c.Offset+c.Size)
		}
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RequireWeights fails for files without tensors, such as llama.cpp's
// vocabulary-only files: they are valid GGUF but cannot generate text.
func (f *File) RequireWeights() error {
	if len(f.Tensors) > 0 {
		return nil
	}
	return &Error{Path: f.Path, Msg: "no tensors (a vocabulary-only file?): it cannot generate text", Err: ErrNoWeights}
}

// Architecture is general.architecture, e.g. "llama".
func (f *File) Architecture() string {
	s, _ := f.KV.String("general.architecture")
	return s
}

// archUint reads "<arch>.<suffix>" as an unsigned integer (0 if absent).
func (f *File) archUint(suffix string) uint64 {
	arch := f.Architecture()
	if arch == "" {
		return 0
	}
	n, _ := f.KV.Uint(arch + "." + suffix)
	return n
}

// ContextLength is <arch>.context_length, the context the model was
// trained for (0 if absent).
func (f *File) ContextLength() uint64 { return f.archUint("context_length") }

// BlockCount is <arch>.block_count, the number of layers (0 if absent).
func (f *File) BlockCount() uint64 { return f.archUint("block_count") }

// ParamCount is the total number of tensor elements.
func (f *File) ParamCount() uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Elements()
	}
	return n
}

// TensorBytes is the total size of tensor data, without padding.
func (f *File) TensorBytes() uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Size
	}
	return n
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// HasChatTemplate reports whether tokenizer.chat_template is a non-empty
// string (kept in memory or not).
func (f *File) HasChatTemplate() bool {
	v, ok := f.KV.Get("tokenizer.chat_template")
	return ok && v.Type == TypeString && v.Len > 0
}

// FileType names the quantization, e.g. "Q8_0" or "Q4_K_M": from
// general.file_type when it holds a known value, otherwise the tensor type
// that holds the most bytes. It is "" for a file without either.
func (f *File) FileType() string {
	if ft, ok := f.KV.Uint("general.file_type"); ok {
		if name, ok := FileTypeName(ft); ok {
			return name
		}
	}
	bytes := map[GGMLType]uint64{}
	for _, t := range f.Tensors {
		bytes[t.Type] += t.Size
	}
	best, bestN := GGMLType(0), uint64(0)
	for t, n := range bytes {
		if n > bestN || (n == bestN && t < best) {
			best, bestN = t, n
		}
	}
	if bestN == 0 {
		return ""
	}
	return best.String()
}
