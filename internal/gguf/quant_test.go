package gguf

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16RoundTripAllHalves(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if f != f {
			if g := F32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := F32ToF16(f); g != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, g)
		}
	}
}

// TestF16RoundsToNearestEven checks every tie between neighbouring halves,
// and the floats just either side of it.
func TestF16RoundsToNearestEven(t *testing.T) {
	for h := uint16(0); h < 0x7bff; h++ { // positive finite, below the largest
		lo, hi := F16ToF32(h), F16ToF32(h+1)
		mid := (lo + hi) / 2 // exact: halves have 11 significant bits
		want := h
		if h&1 == 1 {
			want = h + 1
		}
		if got := F32ToF16(mid); got != want {
			t.Fatalf("tie %g between %#04x and %#04x -> %#04x", mid, h, h+1, got)
		}
		if got := F32ToF16(math.Nextafter32(mid, 0)); got != h {
			t.Fatalf("below tie %#04x: %#04x", h, got)
		}
		if got := F32ToF16(math.Nextafter32(mid, 1e9)); got != h+1 {
			t.Fatalf("above tie %#04x: %#04x", h, got)
		}
		if got := F32ToF16(-mid); got != want|0x8000 {
			t.Fatalf("negative tie %#04x: %#04x", h, got)
		}
	}
	cases := map[float32]uint16{
		65504:                         0x7bff,
		65519:                         0x7bff,
		65520:                         0x7c00, // the tie rounds to even, which is infinity
		1e10:                          0x7c00,
		float32(math.Inf(-1)):         0xfc00,
		0x1p-24:                       0x0001,
		0x1p-25:                       0x0000, // tie with 0
		0x1.000002p-25:                0x0001,
		0x1p-26:                       0x0000,
		0x1.ff8p-15:                   0x03ff, // the largest subnormal
		0x1.ffep-15:                   0x0400, // rounds up into the smallest normal
		float32(math.Copysign(0, -1)): 0x8000,
		1:                             0x3c00,
		-2:                            0xc000,
	}
	for f, want := range cases {
		if got := F32ToF16(f); got != want {
			t.Errorf("%g -> %#04x, want %#04x", f, got, want)
		}
	}
}

func TestEncodeF32F16(t *testing.T) {
	b := EncodeF32([]float32{1, -2})
	if !bytes.Equal(b, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0}) {
		t.Errorf("F32 % x", b)
	}
	b = EncodeF16([]float32{1, -2, 0.5})
	if !bytes.Equal(b, []byte{0, 0x3c, 0, 0xc0, 0, 0x38}) {
		t.Errorf("F16 % x", b)
	}
}

func TestQuantizeQ8_0(t *testing.T) {
	// amax 127 makes d exactly 1, so the quants are round(x) and halves
	// show the rounding mode (roundf: away from zero).
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i) - 16
	}
	x[0], x[1], x[2], x[3] = 127, -2.5, 2.5, 0.49
	b := QuantizeQ8_0(x)
	if len(b) != 34 || b[0] != 0x00 || b[1] != 0x3c {
		t.Fatalf("header % x", b[:2])
	}
	want := []int8{127, -3, 3, 0}
	for i, w := range want {
		if int8(b[2+i]) != w {
			t.Errorf("q[%d] = %d, want %d", i, int8(b[2+i]), w)
		}
	}
	for i := 4; i < 32; i++ {
		if int8(b[2+i]) != int8(i-16) {
			t.Errorf("q[%d] = %d", i, int8(b[2+i]))
		}
	}
	// All zero: d = 0, quants 0.
	if z := QuantizeQ8_0(make([]float32, 32)); !bytes.Equal(z, make([]byte, 34)) {
		t.Errorf("zeros % x", z)
	}
}

func TestQuantizeQ4_0(t *testing.T) {
	// The largest magnitude is -8, so d = 1 and q = min(15, int8(x+8.5)).
	x := make([]float32, 32)
	x[0] = -8
	x[1] = 7
	x[2] = 7.4
	x[3] = -0.6
	x[4] = 0.5
	x[16] = 7.9 // high nibble of byte 0
	x[17] = -7.6
	b := QuantizeQ4_0(x)
	if len(b) != 18 || b[0] != 0x00 || b[1] != 0x3c {
		t.Fatalf("d = % x", b[:2])
	}
	lo := []byte{0, 15, 15, 7, 9}
	for j, w := range lo {
		if b[2+j]&0xf != w {
			t.Errorf("low nibble %d = %d, want %d", j, b[2+j]&0xf, w)
		}
	}
	if b[2]>>4 != 15 || b[3]>>4 != 0 || b[4]>>4 != 8 {
		t.Errorf("high nibbles %d %d %d", b[2]>>4, b[3]>>4, b[4]>>4)
	}
	// A positive maximum gives a negative d; x = -max maps to 16, clamped.
	x = make([]float32, 32)
	x[0], x[1] = 8, -8
	b = QuantizeQ4_0(x)
	if b[0] != 0x00 || b[1] != 0xbc { // -1.0
		t.Errorf("d = % x", b[:2])
	}
	if b[2]&0xf != 0 || b[3]&0xf != 15 || b[4]&0xf != 8 {
		t.Errorf("q % x", b[2:5])
	}
}

func TestQuantizeAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 32*64)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	// tol is in quantization steps: Q4_0's levels run from -8 to 7, so a
	// value of the opposite sign to the block maximum can be clamped a
	// whole step.
	check := func(name string, got []float32, levels, tol float64) {
		for b := 0; b < len(x); b += 32 {
			var amax float64
			for _, v := range x[b : b+32] {
				amax = math.Max(amax, math.Abs(float64(v)))
			}
			step := amax / levels
			for i := b; i < b+32; i++ {
				if e := math.Abs(float64(got[i] - x[i])); e > step*tol+1e-3*amax {
					t.Fatalf("%s: element %d: %g vs %g (step %g)", name, i, got[i], x[i], step)
				}
			}
		}
	}
	check("Q8_0", DequantizeQ8_0(QuantizeQ8_0(x)), 127, 0.51)
	check("Q4_0", DequantizeQ4_0(QuantizeQ4_0(x)), 8, 1.01)
	if _, err := AppendEncoded(nil, TypeQ4_1, x); err == nil {
		t.Error("Q4_1 encoding should be unsupported")
	}
	if _, err := AppendEncoded(nil, TypeQ8_0, x[:31]); err == nil {
		t.Error("partial block accepted")
	}
}
