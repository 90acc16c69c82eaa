package worker

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// gpuModel is the fake model as if llama.cpp had put it on a GPU.
type gpuModel struct{ *fake.Model }

func (m gpuModel) Info() engine.Info {
	i := m.Model.Info()
	i.Device, i.DeviceName, i.GPULayers, i.DeviceMemoryBytes = "cuda:1", "NVIDIA H200", 25, 1536<<20
	return i
}

// The device, its name, the layers on it and the memory the model took are
// in /v1/ready and in every heartbeat, for the queen's placement; while
// the model loads the worker already says which device it loads onto.
func TestReportsGPUUse(t *testing.T) {
	q := &fakeQueen{}
	qs := httptest.NewServer(q)
	defer qs.Close()
	loading := make(chan struct{})
	s := New(Config{
		WorkerID: "w1", HiveID: "localhost", ModelName: "fake", ModelSize: 100, Device: "cuda:1",
		QueenURL: qs.URL, URL: "http://127.0.0.1:9999", HeartbeatInterval: 20 * time.Millisecond,
		Load: func(func(float32)) (engine.Model, error) {
			<-loading
			return gpuModel{&fake.Model{}}, nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	if r := s.Ready(); r.Device != "cuda:1" || r.Ready || r.GPUUse != (wire.GPUUse{}) {
		t.Fatalf("while loading: %+v", r)
	}
	close(loading)
	testkit.WaitFor(t, "ready", func() bool { return s.Ready().Ready })
	want := wire.GPUUse{DeviceName: "NVIDIA H200", GPULayers: 25, DeviceMemoryBytes: 1536 << 20}
	if r := s.Ready(); r.Device != "cuda:1" || r.GPUUse != want {
		t.Fatalf("ready: %+v", r)
	}
	testkit.WaitFor(t, "a ready heartbeat", func() bool {
		_, beats := q.snapshot()
		return len(beats) > 0 && beats[len(beats)-1].State == wire.StateReady
	})
	_, beats := q.snapshot()
	if hb := beats[len(beats)-1]; hb.Device != "cuda:1" || hb.GPUUse != want {
		t.Fatalf("heartbeat %+v", hb)
	}
}
