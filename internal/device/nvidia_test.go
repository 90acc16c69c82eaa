package device

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSMI puts an nvidia-smi shell script with the given body first on
// $PATH. It answers only the query DetectNVIDIA makes.
func fakeSMI(t *testing.T, body string) {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\n" +
		"[ \"$1\" = '" + SMIQuery[0] + "' ] && [ \"$2\" = '" + SMIQuery[1] + "' ] || { echo \"unexpected arguments: $*\" >&2; exit 2; }\n" +
		body + "\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
}

func TestDetectNVIDIA(t *testing.T) {
	fakeSMI(t, `printf '0, NVIDIA H200, 143771, 143152, 9.0\n1, NVIDIA GeForce RTX 4090, 24564, 20000, 8.9\n'`)
	gpus, err := DetectNVIDIA(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []GPU{
		{Index: 0, Name: "NVIDIA H200", MemoryTotalBytes: 143771 << 20, MemoryFreeBytes: 143152 << 20, ComputeCapability: "9.0"},
		{Index: 1, Name: "NVIDIA GeForce RTX 4090", MemoryTotalBytes: 24564 << 20, MemoryFreeBytes: 20000 << 20, ComputeCapability: "8.9"},
	}
	if len(gpus) != len(want) {
		t.Fatalf("got %+v", gpus)
	}
	for i := range want {
		if gpus[i] != want[i] {
			t.Errorf("GPU %d = %+v, want %+v", i, gpus[i], want[i])
		}
	}
	if d := gpus[1].Device(); d.String() != "cuda:1" {
		t.Errorf("device %v", d)
	}
}

func TestDetectNVIDIANoGPU(t *testing.T) {
	fakeSMI(t, "exit 0")
	gpus, err := DetectNVIDIA(context.Background())
	if err != nil || gpus == nil || len(gpus) != 0 {
		t.Fatalf("got %#v, %v; want an empty list", gpus, err)
	}
}

func TestDetectNVIDIAMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := DetectNVIDIA(context.Background()); !errors.Is(err, ErrNoNvidiaSMI) {
		t.Fatalf("err = %v, want ErrNoNvidiaSMI", err)
	}
}

func TestDetectNVIDIAFailing(t *testing.T) {
	// What nvidia-smi says when the driver is not loaded: on stdout.
	fakeSMI(t, `echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."; exit 9`)
	_, err := DetectNVIDIA(context.Background())
	if err == nil || !strings.Contains(err.Error(), "couldn't communicate with the NVIDIA driver") {
		t.Fatalf("err = %v, want nvidia-smi's own words", err)
	}
}

func TestDetectNVIDIAGarbage(t *testing.T) {
	fakeSMI(t, `echo "this is not a GPU list"`)
	if gpus, err := DetectNVIDIA(context.Background()); err == nil {
		t.Fatalf("got %+v, want an error", gpus)
	}
}

func TestDetectNVIDIAFlood(t *testing.T) {
	fakeSMI(t, `i=0; while [ $i -lt 5000 ]; do echo "0, NVIDIA H200, 143771, 143152, 9.0"; i=$((i+1)); done`)
	if gpus, err := DetectNVIDIA(context.Background()); err == nil {
		t.Fatalf("got %d GPUs, want an error", len(gpus))
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	gpus, err := ParseNvidiaSMI([]byte("0, NVIDIA GH200 480GB, [N/A], [N/A], 9.0\r\n3, Tesla T4, 15360, 15000, [N/A]\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 2 || gpus[0].MemoryTotalBytes != 0 || gpus[0].ComputeCapability != "9.0" ||
		gpus[1].Index != 3 || gpus[1].ComputeCapability != "" || gpus[1].MemoryFreeBytes != 15000<<20 {
		t.Fatalf("got %+v", gpus)
	}
	// A comma inside the name is kept.
	gpus, err = ParseNvidiaSMI([]byte("0, Odd, Name, 100, 50, 8.6\n"))
	if err != nil || len(gpus) != 1 || gpus[0].Name != "Odd, Name" || gpus[0].MemoryFreeBytes != 50<<20 {
		t.Fatalf("got %+v, %v", gpus, err)
	}
	for _, bad := range []string{
		"0, NVIDIA H200, 143771, 9.0",                    // too few fields
		"x, NVIDIA H200, 143771, 143152, 9.0",            // index
		"-1, NVIDIA H200, 143771, 143152, 9.0",           // index
		"256, NVIDIA H200, 143771, 143152, 9.0",          // index
		"0, , 143771, 143152, 9.0",                       // empty name
		"0, NVIDIA\x1b[31m, 143771, 143152, 9.0",         // control characters
		"0, " + strings.Repeat("A", 200) + ", 1, 1, 9.0", // long name
		"0, NVIDIA H200, 143771, 143152, nine",           // compute capability
		"0, A, 1, 1, 9.0\n0, B, 1, 1, 9.0",               // index twice
	} {
		if g, err := ParseNvidiaSMI([]byte(bad)); err == nil {
			t.Errorf("ParseNvidiaSMI(%q) = %+v, want an error", bad, g)
		}
	}
}
