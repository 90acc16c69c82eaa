package workers

import (
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

// A GPU worker's heartbeat carries its device use into the registry, for
// placement; what it reports is checked like the rest.
func TestGPUUseInHeartbeats(t *testing.T) {
	good := hb("w1", "m", wire.StateReady, 0)
	good.Device = "cuda:0"
	good.GPUUse = wire.GPUUse{DeviceName: "NVIDIA H200", GPULayers: 25, DeviceMemoryBytes: 2 << 30}
	if err := Validate(good); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*wire.Heartbeat){
		"negative layers": func(h *wire.Heartbeat) { h.GPULayers = -1 },
		"absurd layers":   func(h *wire.Heartbeat) { h.GPULayers = 1 << 30 },
		"control char":    func(h *wire.Heartbeat) { h.DeviceName = "NVIDIA\x1b[2J" },
		"long name":       func(h *wire.Heartbeat) { h.DeviceName = string(make([]byte, 200)) },
	} {
		h := good
		mut(&h)
		if err := Validate(h); err == nil {
			t.Errorf("%s: accepted %+v", name, h.GPUUse)
		}
	}
	r := New(Options{})
	if err := r.Heartbeat(good); err != nil {
		t.Fatal(err)
	}
	list := r.List()
	if len(list) != 1 || list[0].GPUUse != good.GPUUse || list[0].Device != "cuda:0" {
		t.Fatalf("registry: %+v", list)
	}
}
