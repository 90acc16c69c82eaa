package wire

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, c := range []struct {
		check func(string) error
		ok    []string
		bad   []string
	}{
		{CheckWorkerID, []string{"w-1a2b", "worker.1", "A_b", strings.Repeat("w", 128)},
			[]string{"", "-w", "_w", ".w", "w/1", "w 1", "w\n", "wé", strings.Repeat("w", 129)}},
		{CheckHiveID, []string{"localhost", "gpu-1", "_lab", "a.b", strings.Repeat("h", 63)},
			[]string{"", "-h", ".h", "h/1", "h:1", "h 1", strings.Repeat("h", 64)}},
		{CheckModelID, []string{"stories260K", "qwen2.5-0.5b", "a_b", strings.Repeat("m", 128)},
			[]string{"", "-m", "_m", "a..b", "m.", "m/x", "../etc/passwd", "m x", strings.Repeat("m", 129)}},
	} {
		for _, s := range c.ok {
			if err := c.check(s); err != nil {
				t.Errorf("%q: %v", s, err)
			}
		}
		for _, s := range c.bad {
			if c.check(s) == nil {
				t.Errorf("%.40q accepted", s)
			}
		}
	}
}
