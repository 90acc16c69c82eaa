package llama

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/device"
)

func touch(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBackendLibraries(t *testing.T) {
	root := t.TempDir()
	exe := filepath.Join(root, "bin")
	// Nothing anywhere: nothing to load, and the places looked at are named.
	libs, looked := backendLibraries("", exe)
	if libs != nil || !reflect.DeepEqual(looked, []string{filepath.Join(exe, "lib"), filepath.Join(exe, "..", "lib", "rbee")}) {
		t.Fatalf("empty: %v, looked %v", libs, looked)
	}

	// ../lib/rbee is used when bin/lib has no backend.
	touch(t, filepath.Join(root, "lib", "rbee", "libggml-cuda.so"), "")
	touch(t, filepath.Join(exe, "lib", "README"), "")
	if libs, _ := backendLibraries("", exe); !reflect.DeepEqual(libs, []string{filepath.Join(exe, "..", "lib", "rbee", "libggml-cuda.so")}) {
		t.Fatalf("fallback folder: %v", libs)
	}

	// bin/lib wins, and holds only backends: not ggml's base library, not
	// a CPU backend, not other files.
	for _, name := range []string{"libggml-cuda.so", "libggml-vulkan.so", "libggml-base.so", "libggml-base.so.0",
		"libggml-cpu-haswell.so", "libggml-cpu.so", "libcudart.so.13", "libggml-cuda.so.bak"} {
		touch(t, filepath.Join(exe, "lib", name), "")
	}
	want := []string{filepath.Join(exe, "lib", "libggml-cuda.so"), filepath.Join(exe, "lib", "libggml-vulkan.so")}
	if libs, _ := backendLibraries("", exe); !reflect.DeepEqual(libs, want) {
		t.Fatalf("bin/lib: %v, want %v", libs, want)
	}

	// RBEE_BACKEND_PATH replaces the default folders: its folders and its
	// files (missing ones too, so that the mistake is reported), each
	// file once.
	other := filepath.Join(root, "other")
	touch(t, filepath.Join(other, "libggml-metal.so"), "")
	missing := filepath.Join(root, "nope", "libggml-cuda.so")
	env := strings.Join([]string{other, "", filepath.Join(other, "libggml-metal.so"), missing}, string(os.PathListSeparator))
	libs, looked = backendLibraries(env, exe)
	if want := []string{filepath.Join(other, "libggml-metal.so"), missing}; !reflect.DeepEqual(libs, want) {
		t.Fatalf("%s=%s: %v, want %v", BackendPathEnv, env, libs, want)
	}
	if len(looked) != 3 {
		t.Errorf("looked at %v", looked)
	}
}

func TestLoadBrokenBackends(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "libggml-cuda.so")
	touch(t, text, strings.Repeat("this text file is not a library\n", 8))
	b := loadBackend(text)
	if b.Err == nil || b.Name != "" {
		t.Fatalf("a text file loaded: %+v", b)
	}
	if msg := b.Err.Error(); !strings.HasPrefix(msg, text+": ") || !strings.Contains(msg, "invalid ELF header") || strings.Count(msg, text) != 1 {
		t.Errorf("message %q: want the file named once and the loader's reason", msg)
	}

	if b := loadBackend(filepath.Join(dir, "libggml-none.so")); b.Err == nil || !errors.Is(b.Err, os.ErrNotExist) {
		t.Errorf("a missing file: %+v", b)
	}
	if b := loadBackend(dir); b.Err == nil || !strings.Contains(b.Err.Error(), "not a file") {
		t.Errorf("a folder: %+v", b)
	}

	cc := compiler(t)
	notBackend := buildLib(t, cc, "libggml-other.so", "int something(void) { return 1; }\n")
	if b := loadBackend(notBackend); b.Err == nil || !strings.Contains(b.Err.Error(), "not a ggml backend") {
		t.Errorf("a library without ggml_backend_init: %+v", b)
	}
	unsupported := buildLib(t, cc, "libggml-nope.so", "void *ggml_backend_init(void) { return 0; }\nint ggml_backend_score(void) { return 0; }\n")
	if b := loadBackend(unsupported); b.Err == nil || !strings.Contains(b.Err.Error(), "does not support this machine") {
		t.Errorf("a backend scoring 0: %+v", b)
	}
	failing := buildLib(t, cc, "libggml-fail.so", "void *ggml_backend_init(void) { return 0; }\n")
	if b := loadBackend(failing); b.Err == nil || !strings.Contains(b.Err.Error(), "could not initialize") {
		t.Errorf("a backend whose init fails: %+v", b)
	}
}

// A backend built against ggml's own backend interface, with no devices,
// loads and is registered under its name.
func TestLoadBackend(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/ollama/ollama").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	ggml := filepath.Join(strings.TrimSpace(string(out)), "ml", "backend", "ggml", "ggml")
	src := `#include "ggml-backend-impl.h"
static const char *name(ggml_backend_reg_t r) { (void)r; return "RBEETEST"; }
static size_t count(ggml_backend_reg_t r) { (void)r; return 0; }
static ggml_backend_dev_t get(ggml_backend_reg_t r, size_t i) { (void)r; (void)i; return 0; }
static void *proc(ggml_backend_reg_t r, const char *n) { (void)r; (void)n; return 0; }
static struct ggml_backend_reg reg = { GGML_BACKEND_API_VERSION, { name, count, get, proc }, 0 };
ggml_backend_reg_t ggml_backend_init(void) { return &reg; }
`
	lib := buildLib(t, compiler(t), "libggml-rbeetest.so", src, "-I"+filepath.Join(ggml, "src"), "-I"+filepath.Join(ggml, "include"))
	b := loadBackend(lib)
	if b.Err != nil || b.Name != "RBEETEST" || b.Devices != 0 {
		t.Fatalf("%+v", b)
	}
}

func compiler(t *testing.T) string {
	t.Helper()
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("no C compiler to build test libraries: %v", err)
	}
	return cc
}

func buildLib(t *testing.T, cc, name, src string, flags ...string) string {
	t.Helper()
	dir := t.TempDir()
	c := filepath.Join(dir, "lib.c")
	touch(t, c, src)
	lib := filepath.Join(dir, name)
	args := append([]string{"-shared", "-fPIC", "-o", lib, c}, flags...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
	}
	return lib
}

func TestFindDevice(t *testing.T) {
	cpu, err := FindDevice(device.Device{Kind: device.CPU})
	if err != nil || cpu.Type != "cpu" || cpu.Name == "" {
		t.Fatalf("cpu: %+v, %v", cpu, err)
	}
	if free, total := cpu.Memory(); total == 0 || free > total {
		t.Errorf("cpu memory %d free of %d", free, total)
	}
	found := false
	for _, d := range Devices() {
		found = found || (d.Type == "cpu" && d.Name == cpu.Name)
	}
	if !found {
		t.Errorf("Devices() lacks the CPU: %+v", Devices())
	}
	if hasGPU() {
		t.Skip("this machine has a GPU backend loaded")
	}
	for _, d := range []device.Device{{Kind: device.CUDA}, {Kind: device.Metal, Index: 1}} {
		_, err := FindDevice(d)
		if !errors.Is(err, ErrNoBackend) || !strings.HasPrefix(err.Error(), d.String()+": ") {
			t.Errorf("%s: %v", d, err)
		}
	}
	_, err = FindDevice(device.Device{Kind: device.CUDA})
	if err == nil || !strings.Contains(err.Error(), "make cuda") {
		t.Errorf("cuda:0 without a CUDA backend: %v; want how to build one", err)
	}
}

// A GPU device that cannot be found is an error from Load, before any of
// the file is read: no crash, no fallback to the CPU.
func TestLoadOnMissingGPU(t *testing.T) {
	if hasGPU() {
		t.Skip("this machine has a GPU backend loaded")
	}
	path := filepath.Join(sharedModels, "stories260K.gguf")
	if _, err := Load(path, Options{Threads: 1, CtxSize: 256, Device: "cuda:0"}); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Load on cuda:0: %v", err)
	}
	if _, err := Load(path, Options{Threads: 1, CtxSize: 256, Device: "tpu:0"}); err == nil {
		t.Fatal("Load on tpu:0 succeeded")
	}
	m, err := Load(path, Options{Threads: 1, CtxSize: 256, Device: "cpu", GPULayers: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if info := m.Info(); info.Device != "cpu" || info.GPULayers != 0 || info.DeviceMemoryBytes != 0 || info.DeviceName != "" {
		t.Errorf("info %+v", info)
	}
}

func hasGPU() bool {
	for _, d := range Devices() {
		if d.Type != "cpu" {
			return true
		}
	}
	return false
}
