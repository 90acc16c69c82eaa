package device

import "testing"

func TestParse(t *testing.T) {
	good := map[string]Device{
		"cpu":       {Kind: CPU},
		"cuda:0":    {Kind: CUDA, Index: 0},
		"cuda:7":    {Kind: CUDA, Index: 7},
		"cuda:255":  {Kind: CUDA, Index: 255},
		"metal:0":   {Kind: Metal, Index: 0},
		"metal:12":  {Kind: Metal, Index: 12},
		"cuda:10":   {Kind: CUDA, Index: 10},
		"cuda:100":  {Kind: CUDA, Index: 100},
		"metal:255": {Kind: Metal, Index: 255},
	}
	for s, want := range good {
		got, err := Parse(s)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", s, got, err, want)
			continue
		}
		if got.String() != s {
			t.Errorf("Parse(%q).String() = %q", s, got.String())
		}
		if got.IsGPU() != (s != "cpu") {
			t.Errorf("Parse(%q).IsGPU() = %v", s, got.IsGPU())
		}
	}
	for _, s := range []string{
		"", "gpu", "CPU", "Cuda:0", "cuda", "cuda:", "cuda:-1", "cuda:+1", "cuda:01", "cuda:256",
		"cuda:1000", "cuda:0 ", " cuda:0", "cuda:0:1", "cuda:x", "rocm:0", "metal", "cpu:0",
		"cuda:\x00", "cuda:٣", "tpu:0",
	} {
		if d, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", s, d)
		}
	}
}
