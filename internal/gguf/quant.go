package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F32ToF16 converts to IEEE 754 half precision, rounding to nearest even as
// ggml's GGML_FP32_TO_FP16 does, so files written here match files written
// by ggml bit for bit.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // stays a quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Half subnormals are multiples of 2^-24; a float's value is
		// full·2^(exp-150), so the multiple is full >> (126-exp).
		shift := uint(14 - e)
		if shift > 24 {
			return sign // below half the smallest subnormal
		}
		// A carry out of the mantissa lands in the exponent field, which
		// is exactly the smallest normal number.
		return sign | uint16(rneShift(mant|0x800000, shift))
	}
	// Likewise a mantissa carry bumps the exponent, up to infinity.
	return sign | uint16(uint32(e)<<10+rneShift(mant, 13))
}

// rneShift is x >> s rounded to nearest, ties to even (s ≥ 1).
func rneShift(x uint32, s uint) uint32 {
	q := x >> s
	rem := x & (1<<s - 1)
	half := uint32(1) << (s - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return q
}

// F16ToF32 converts an IEEE 754 half to float32 (exactly).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// AppendF32 appends x as little-endian float32 (ggml type F32).
func AppendF32(dst []byte, x []float32) []byte {
	for _, v := range x {
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
	}
	return dst
}

// EncodeF32 encodes x as ggml type F32.
func EncodeF32(x []float32) []byte { return AppendF32(make([]byte, 0, 4*len(x)), x) }

// AppendF16 appends x as little-endian IEEE halves (ggml type F16).
func AppendF16(dst []byte, x []float32) []byte {
	for _, v := range x {
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(v))
	}
	return dst
}

// EncodeF16 encodes x as ggml type F16.
func EncodeF16(x []float32) []byte { return AppendF16(make([]byte, 0, 2*len(x)), x) }

const qk = 32 // elements per Q4_0 and Q8_0 block

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// AppendQ8_0 appends x quantized as ggml block_q8_0, following
// quantize_row_q8_0_ref: d = amax/127 stored as fp16, then 32 values
// round(x/d) as int8. Every operation is float32, as in the C reference,
// so the bytes match ggml's own quantizer. len(x) must be a multiple of 32.
func AppendQ8_0(dst []byte, x []float32) []byte {
	if len(x)%qk != 0 {
		panic(fmt.Sprintf("gguf: Q8_0 needs a multiple of %d values, got %d", qk, len(x)))
	}
	for b := 0; b < len(x); b += qk {
		blk := x[b : b+qk]
		var amax float32
		for _, v := range blk {
			amax = max(amax, abs32(v))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for _, v := range blk {
			// roundf rounds halves away from zero, as math.Round does; the
			// explicit float32 conversion stops the product being fused or
			// kept in higher precision.
			dst = append(dst, byte(int8(math.Round(float64(float32(v*id))))))
		}
	}
	return dst
}

// QuantizeQ8_0 quantizes x (len a multiple of 32) as ggml type Q8_0.
func QuantizeQ8_0(x []float32) []byte {
	return AppendQ8_0(make([]byte, 0, len(x)/qk*34), x)
}

// AppendQ4_0 appends x quantized as ggml block_q4_0, following
// quantize_row_q4_0_ref: d = max/-8 (max is the value of largest
// magnitude, sign kept) as fp16, then 16 bytes whose low nibbles hold
// elements 0..15 and high nibbles elements 16..31, each
// min(15, int8(x/d + 8.5)). len(x) must be a multiple of 32.
func AppendQ4_0(dst []byte, x []float32) []byte {
	if len(x)%qk != 0 {
		panic(fmt.Sprintf("gguf: Q4_0 needs a multiple of %d values, got %d", qk, len(x)))
	}
	q := func(v, id float32) byte {
		// C's (int8_t) conversion truncates toward zero, as Go's does.
		return byte(min(15, int8(float32(v*id)+8.5)))
	}
	for b := 0; b < len(x); b += qk {
		blk := x[b : b+qk]
		var amax, mx float32
		for _, v := range blk {
			if a := abs32(v); amax < a {
				amax, mx = a, v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for j := 0; j < qk/2; j++ {
			dst = append(dst, q(blk[j], id)|q(blk[j+qk/2], id)<<4)
		}
	}
	return dst
}

// QuantizeQ4_0 quantizes x (len a multiple of 32) as ggml type Q4_0.
func QuantizeQ4_0(x []float32) []byte {
	return AppendQ4_0(make([]byte, 0, len(x)/qk*18), x)
}

// AppendEncoded appends x encoded as type t, for the types this package can
// produce: F32, F16, Q8_0 and Q4_0.
func AppendEncoded(dst []byte, t GGMLType, x []float32) ([]byte, error) {
	if bs := t.BlockSize(); bs > 1 && uint64(len(x))%bs != 0 {
		return dst, fmt.Errorf("gguf: %s needs a multiple of %d values, got %d", t, bs, len(x))
	}
	switch t {
	case TypeF32:
		return AppendF32(dst, x), nil
	case TypeF16:
		return AppendF16(dst, x), nil
	case TypeQ8_0:
		return AppendQ8_0(dst, x), nil
	case TypeQ4_0:
		return AppendQ4_0(dst, x), nil
	}
	return dst, fmt.Errorf("gguf: cannot encode type %s", t)
}

// DequantizeQ8_0 decodes Q8_0 blocks (for tests and debugging).
func DequantizeQ8_0(b []byte) []float32 {
	out := make([]float32, 0, len(b)/34*qk)
	for ; len(b) >= 34; b = b[34:] {
		d := F16ToF32(binary.LittleEndian.Uint16(b))
		for _, q := range b[2:34] {
			out = append(out, float32(int8(q))*d)
		}
	}
	return out
}

// DequantizeQ4_0 decodes Q4_0 blocks (for tests and debugging).
func DequantizeQ4_0(b []byte) []float32 {
	out := make([]float32, 0, len(b)/18*qk)
	for ; len(b) >= 18; b = b[18:] {
		d := F16ToF32(binary.LittleEndian.Uint16(b))
		var blk [qk]float32
		for j, q := range b[2:18] {
			blk[j] = float32(int(q&0xf)-8) * d
			blk[j+qk/2] = float32(int(q>>4)-8) * d
		}
		out = append(out, blk[:]...)
	}
	return out
}
