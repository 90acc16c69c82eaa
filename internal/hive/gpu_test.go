package hive

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/wire"
)

// fakeNvidiaSMI puts an nvidia-smi first on $PATH that lists one H200 as
// cuda:0, answering only the query the hive makes.
func fakeNvidiaSMI(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"[ \"$*\" = '" + strings.Join(device.SMIQuery, " ") + "' ] || exit 2\n" +
		"echo '0, NVIDIA H200, 143771, 143152, 9.0'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCapabilitiesListGPUs(t *testing.T) {
	fakeNvidiaSMI(t)
	h := startHive(t)
	var caps wire.HiveCapabilities
	getJSON(t, h.url+"/v1/capabilities", &caps)
	want := wire.GPUInfo{Device: "cuda:0", Name: "NVIDIA H200", MemoryTotalBytes: 143771 << 20, MemoryFreeBytes: 143152 << 20, ComputeCapability: "9.0"}
	if len(caps.GPUs) != 1 || caps.GPUs[0] != want {
		t.Fatalf("gpus %+v, want [%+v]", caps.GPUs, want)
	}
}

// A spawn names a GPU the hive has, or is refused before any job exists
// with the GPUs it does have.
func TestSpawnChecksTheGPU(t *testing.T) {
	fakeNvidiaSMI(t)
	h := startHive(t)
	for dev, want := range map[string]string{
		"cuda:1":  "has no GPU cuda:1; it has cuda:0 (NVIDIA H200, 143152 MiB free)",
		"cuda:01": "index",
		"metal:0": "Metal GPUs are on macOS",
		"gpu":     "want cpu, cuda:N or metal:N",
	} {
		re := h.submit(t, wire.Operation{Operation: wire.OpWorkerSpawn, Model: h.model(t, "alpha"), Device: dev})
		if re == nil || re.Status != http.StatusBadRequest || !strings.Contains(re.Message, want) {
			t.Errorf("%s: got %v, want 400 saying %q", dev, re, want)
		}
	}

	info := result[wire.WorkerInfo](t, h, wire.Operation{Operation: wire.OpWorkerSpawn, Model: h.model(t, "alpha"), Device: "cuda:0"})
	if info.Device != "cuda:0" {
		t.Fatalf("worker %+v", info)
	}
	var args []string
	data, err := os.ReadFile(filepath.Join(h.models, "args-"+info.WorkerID+".json"))
	if err == nil {
		err = json.Unmarshal(data, &args)
	}
	if i := slices.Index(args, "--device"); err != nil || i < 0 || i+1 >= len(args) || args[i+1] != "cuda:0" {
		t.Fatalf("worker args %v (%v): want --device cuda:0", args, err)
	}
}

func TestSpawnGPUWithoutNvidiaSMI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	h := startHive(t)
	re := h.submit(t, wire.Operation{Operation: wire.OpWorkerSpawn, Model: h.model(t, "alpha"), Device: "cuda:0"})
	if re == nil || re.Status != http.StatusBadRequest || !strings.Contains(re.Message, "no NVIDIA GPU") {
		t.Fatalf("got %v", re)
	}
	if raw := getJSON(t, h.url+"/v1/capabilities", nil); !strings.Contains(raw, `"gpus":[]`) {
		t.Fatalf("capabilities %s: want \"gpus\":[]", raw)
	}
}
