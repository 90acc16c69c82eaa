package membw

import "testing"

func TestMeasure(t *testing.T) {
	if r := Measure(8<<20, 2, 2); r <= 0 {
		t.Fatalf("rate %v", r)
	}
}
