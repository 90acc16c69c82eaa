package device

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestManifestRuns(t *testing.T) {
	for _, c := range []struct {
		archs []string
		cc    string
		runs  bool
	}{
		{[]string{"90"}, "9.0", true},
		{[]string{"90"}, "10.0", true},       // PTX compiles for newer GPUs
		{[]string{"90"}, "8.9", false},       // nothing runs on older ones
		{[]string{"90-real"}, "10.0", false}, // SASS only: same major
		{[]string{"80-real"}, "8.6", true},   // SASS: newer minor of the same major
		{[]string{"86-real"}, "8.0", false},
		{[]string{"75-virtual", "80-virtual", "86-real"}, "8.9", true},
		{[]string{"75-virtual"}, "7.0", false},
		{[]string{"90a"}, "9.0", true},
		{[]string{"90a"}, "10.0", false}, // arch-specific: 9.0 alone
		{[]string{"90a-real"}, "9.1", false},
		{[]string{"120"}, "12.0", true},
		{[]string{"120"}, "9.0", false},
		{[]string{"all-major"}, "7.5", true},
		{[]string{"native"}, "9.0", false}, // unknown when built: never assume
		{[]string{"9"}, "9.0", false},
		{nil, "9.0", false},
	} {
		err := Manifest{CUDAArchitectures: c.archs}.Runs(c.cc)
		if (err == nil) != c.runs {
			t.Errorf("%v on %s: err = %v, want runs=%v", c.archs, c.cc, err, c.runs)
		}
		if err != nil && !strings.Contains(err.Error(), "make cuda CUDA_ARCHITECTURES=") {
			t.Errorf("%v on %s: %v does not say how to rebuild", c.archs, c.cc, err)
		}
	}
	for _, cc := range []string{"", "9", "9.0.1", "x.y", "100.0"} {
		if err := (Manifest{CUDAArchitectures: []string{"all"}}).Runs(cc); err == nil {
			t.Errorf("compute capability %q accepted", cc)
		}
	}
}

func TestInstallFiles(t *testing.T) {
	if files, err := InstallFiles(filepath.Join(t.TempDir(), "none")); err != nil || files != nil {
		t.Fatalf("missing folder: %v, %v", files, err)
	}
	dir := t.TempDir()
	for _, name := range []string{"libggml-cuda.so", "libggml-base.so.0", ManifestName, "README", "libfoo.so"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("libggml-base.so.0", filepath.Join(dir, "libggml-base.so")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "libggml-dir.so"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := InstallFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "libggml-base.so.0"), filepath.Join(dir, "libggml-cuda.so"), filepath.Join(dir, ManifestName)}
	if !reflect.DeepEqual(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}

	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"cuda_architectures":["86-real","90"],"cuda_version":"13.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil || !reflect.DeepEqual(m, Manifest{CUDAArchitectures: []string{"86-real", "90"}, CUDAVersion: "13.0"}) {
		t.Fatalf("manifest %+v, %v", m, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(`{"cuda_architectures":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadManifest(dir); err == nil || !strings.Contains(err.Error(), ManifestName) {
		t.Fatalf("a broken manifest: %v", err)
	}
}

func TestPlanGPUInstall(t *testing.T) {
	h200 := GPU{Index: 0, Name: "NVIDIA H200", ComputeCapability: "9.0"}
	t4 := GPU{Index: 1, Name: "Tesla T4", ComputeCapability: "7.5"}
	lib := func(t *testing.T, manifest string) string {
		dir := t.TempDir()
		for _, n := range []string{"libggml-cuda.so", "libggml-base.so.0"} {
			if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if manifest != "" {
			if err := os.WriteFile(filepath.Join(dir, ManifestName), []byte(manifest), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	built90 := `{"cuda_architectures":["90"],"cuda_version":"13.0"}`
	for _, c := range []struct {
		name  string
		dir   string
		gpus  []GPU
		files int
		note  string
	}{
		{"no GPU", lib(t, built90), nil, 0, "no NVIDIA GPU"},
		{"no backend", t.TempDir(), []GPU{h200, t4}, 0, `make cuda CUDA_ARCHITECTURES="90;75"`},
		{"runs", lib(t, built90), []GPU{h200}, 3, "copying the CUDA backend (built for 90 with CUDA 13.0) for NVIDIA H200"},
		{"runs on one of two", lib(t, built90), []GPU{h200, t4}, 3, "cannot run on cuda:1 (7.5)"},
		{"runs on none", lib(t, built90), []GPU{t4}, 0, `not copying the CUDA backend: the CUDA backend was built for 90, which cannot run on a GPU of compute capability 7.5; rebuild it with: make cuda CUDA_ARCHITECTURES="90;75"`},
		{"no manifest", lib(t, ""), []GPU{t4}, 2, "without knowing what it was built for"},
	} {
		plan, err := PlanGPUInstall(c.dir, c.gpus)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(plan.Files) != c.files || !strings.Contains(plan.Note, c.note) {
			t.Errorf("%s: %d files %v, note %q; want %d files and a note saying %q", c.name, len(plan.Files), plan.Files, plan.Note, c.files, c.note)
		}
	}
}
