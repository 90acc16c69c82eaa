package llama

/*
#cgo CPPFLAGS: -I${SRCDIR}/include
#include <stdio.h>
#include <stdlib.h>
#include <dlfcn.h>
#include "ggml-backend.h"

// rbee_probe_backend opens a library as ggml's loader will, because ggml
// only logs why a library cannot be used and rbee wants the reason in its
// own message. A usable library stays open: ggml's dlopen of the same path
// then shares the handle, and closing a GPU runtime in between is a risk
// with nothing to gain.
static int rbee_probe_backend(const char *path, char *msg, size_t n) {
	dlerror();
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *e = dlerror();
		snprintf(msg, n, "%s", e ? e : "the dynamic loader refused it");
		return 0;
	}
	if (dlsym(h, "ggml_backend_init") == NULL) {
		snprintf(msg, n, "it has no ggml_backend_init: not a ggml backend library");
		dlclose(h);
		return 0;
	}
	int (*score)(void) = (int (*)(void))dlsym(h, "ggml_backend_score");
	if (score != NULL && score() == 0) {
		snprintf(msg, n, "its backend does not support this machine");
		dlclose(h);
		return 0;
	}
	return 1;
}

// rbee_share_log loads a ggml base library that backend libraries bring
// along (they link it, unless the executable exports its own) and points
// its logger at this process's, before a backend is loaded: the dynamic
// loader then gives the backend this copy, and its messages are filtered
// like everyone's instead of going to stderr in full.
static void rbee_share_log(const char *path) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		return;
	}
	void (*set)(ggml_log_callback, void *) = (void (*)(ggml_log_callback, void *))dlsym(h, "ggml_log_set");
	if (set != NULL) {
		ggml_log_callback cb;
		void *user;
		ggml_log_get(&cb, &user);
		set(cb, user);
	}
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/rbee/rbee/internal/device"
)

// BackendPathEnv, when set, lists the backend libraries or folders of them
// to load (separated by ':'), instead of the folders next to the executable.
const BackendPathEnv = "RBEE_BACKEND_PATH"

// Backend is one backend library that LoadBackends tried.
type Backend struct {
	Path    string
	Name    string // the backend's name in ggml's registry, e.g. "CUDA"; empty when not loaded
	Devices int
	Err     error // why it was not loaded
}

var (
	backendsOnce sync.Once
	backends     []Backend
	searched     []string
)

// LoadBackends loads, once per process, the GPU backend libraries it finds
// and returns what happened to each. ggml's core and CPU backend are
// compiled in, so a process that finds none (or only broken ones) still
// runs on the CPU. Where it looks: the entries of RBEE_BACKEND_PATH when
// set, else the first of <executable dir>/lib and <executable dir>/../lib/rbee
// that holds backend libraries (libggml-<name>.so).
func LoadBackends(verbose bool) []Backend {
	backendsOnce.Do(func() {
		initOnce(verbose)
		// CUDA numbers GPUs fastest first unless told otherwise; nvidia-smi,
		// and so the hive's cuda:N, by PCI bus. Set before CUDA starts.
		if os.Getenv("CUDA_DEVICE_ORDER") == "" {
			_ = os.Setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
		}
		var libs []string
		libs, searched = backendLibraries(os.Getenv(BackendPathEnv), executableDir())
		shared := map[string]bool{}
		for _, lib := range libs {
			if dir := filepath.Dir(lib); !shared[dir] {
				shared[dir] = true
				shareLog(dir)
			}
			backends = append(backends, loadBackend(lib))
		}
	})
	return slices.Clone(backends)
}

// shareLog gives the ggml base library in dir (`make cuda` puts one there,
// under its soname) this process's logger. Only one: copies under other
// names would be loaded as separate libraries.
func shareLog(dir string) {
	bases, _ := filepath.Glob(filepath.Join(dir, "libggml-base.so*"))
	for _, b := range bases {
		if st, err := os.Stat(b); err == nil && st.Mode().IsRegular() {
			cb := C.CString(b)
			C.rbee_share_log(cb)
			C.free(unsafe.Pointer(cb))
			return
		}
	}
}

func executableDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return filepath.Dir(exe)
}

// backendLibraries lists the libraries to load and the places it looked.
func backendLibraries(env, exeDir string) (libs, looked []string) {
	if env != "" {
		for _, p := range filepath.SplitList(env) {
			if p == "" {
				continue
			}
			looked = append(looked, p)
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				libs = append(libs, libsIn(p)...)
			} else {
				libs = append(libs, p) // a missing file is reported by loadBackend
			}
		}
		return dedupe(libs), looked
	}
	if exeDir == "" {
		return nil, nil
	}
	for _, dir := range []string{filepath.Join(exeDir, device.LibDir), filepath.Join(exeDir, "..", "lib", "rbee")} {
		looked = append(looked, dir)
		// One folder only: two copies of a backend would list every GPU twice.
		if l := libsIn(dir); len(l) > 0 {
			return l, looked
		}
	}
	return nil, looked
}

// libsIn lists a folder's backend libraries: libggml-<name>.so, but not
// ggml's base library (a dependency of the backends, not one itself) nor
// CPU backends (one is compiled in; a second would compete with it).
func libsIn(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "libggml-") || !strings.HasSuffix(name, ".so") ||
			name == "libggml-base.so" || strings.HasPrefix(name, "libggml-cpu") || e.IsDir() {
			continue
		}
		out = append(out, filepath.Join(dir, name))
	}
	slices.Sort(out)
	return out
}

func dedupe(paths []string) []string {
	var out []string
	var seen []os.FileInfo
next:
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			for _, s := range seen {
				if os.SameFile(s, st) {
					continue next
				}
			}
			seen = append(seen, st)
		}
		out = append(out, p)
	}
	return out
}

func loadBackend(path string) Backend {
	b := Backend{Path: path}
	if st, err := os.Stat(path); err != nil {
		b.Err = err
		return b
	} else if !st.Mode().IsRegular() {
		b.Err = fmt.Errorf("%s is not a file", path)
		return b
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		b.Err = err
		return b
	}
	cpath := C.CString(abs)
	defer C.free(unsafe.Pointer(cpath))
	var msg [512]C.char
	if C.rbee_probe_backend(cpath, &msg[0], C.size_t(len(msg))) == 0 {
		// dlerror often starts with the path, which the message has already.
		b.Err = fmt.Errorf("%s: %s", path, strings.TrimPrefix(C.GoString(&msg[0]), abs+": "))
		return b
	}
	reg := C.ggml_backend_load(cpath)
	if reg == nil {
		b.Err = fmt.Errorf("%s: ggml could not initialize it (its ggml_backend_init failed, or it was built from other ggml sources)", path)
		return b
	}
	b.Name = C.GoString(C.ggml_backend_reg_name(reg))
	b.Devices = int(C.ggml_backend_reg_dev_count(reg))
	return b
}

// BackendDevice is a device of a loaded ggml backend.
type BackendDevice struct {
	Name        string // ggml's name, e.g. "CUDA0"
	Description string // e.g. "NVIDIA H200"
	Backend     string // the backend's name, e.g. "CUDA"
	Index       int    // within its backend
	Type        string // "cpu", "gpu", "igpu" or "accel"
	dev         C.ggml_backend_dev_t
}

// Devices lists the devices of every loaded backend, the CPU included.
func Devices() []BackendDevice {
	initOnce(false)
	var out []BackendDevice
	n := int(C.ggml_backend_reg_count())
	for i := range n {
		reg := C.ggml_backend_reg_get(C.size_t(i))
		for j := range int(C.ggml_backend_reg_dev_count(reg)) {
			out = append(out, backendDevice(reg, j))
		}
	}
	return out
}

func backendDevice(reg C.ggml_backend_reg_t, i int) BackendDevice {
	dev := C.ggml_backend_reg_dev_get(reg, C.size_t(i))
	d := BackendDevice{
		Name:        C.GoString(C.ggml_backend_dev_name(dev)),
		Description: C.GoString(C.ggml_backend_dev_description(dev)),
		Backend:     C.GoString(C.ggml_backend_reg_name(reg)),
		Index:       i,
		dev:         dev,
	}
	switch C.ggml_backend_dev_type(dev) {
	case C.GGML_BACKEND_DEVICE_TYPE_CPU:
		d.Type = "cpu"
	case C.GGML_BACKEND_DEVICE_TYPE_GPU:
		d.Type = "gpu"
	case C.GGML_BACKEND_DEVICE_TYPE_IGPU:
		d.Type = "igpu"
	default:
		d.Type = "accel"
	}
	return d
}

// Memory reports the device's free and total memory. For a GPU the first
// call sets up the driver's context on it.
func (d BackendDevice) Memory() (free, total uint64) {
	var f, t C.size_t
	C.ggml_backend_dev_memory(d.dev, &f, &t)
	return uint64(f), uint64(t)
}

// backendNames are ggml's registry names for each GPU kind.
var backendNames = map[device.Kind][]string{
	device.CUDA:  {"CUDA"},
	device.Metal: {"Metal", "MTL"},
}

// ErrNoBackend means no loaded backend serves the asked device's kind.
var ErrNoBackend = errors.New("no backend for this device is loaded")

// FindDevice returns the loaded device that d names: cuda:N is the N-th
// device of ggml's CUDA backend. The error says what is missing and why,
// from what LoadBackends saw.
func FindDevice(d device.Device) (BackendDevice, error) {
	if !d.IsGPU() {
		initOnce(false)
		cpu := C.ggml_backend_dev_by_type(C.GGML_BACKEND_DEVICE_TYPE_CPU)
		return backendDevice(C.ggml_backend_dev_backend_reg(cpu), 0), nil
	}
	LoadBackends(false)
	var reg C.ggml_backend_reg_t
	names := backendNames[d.Kind]
	for _, name := range names {
		cname := C.CString(name)
		reg = C.ggml_backend_reg_by_name(cname)
		C.free(unsafe.Pointer(cname))
		if reg != nil {
			break
		}
	}
	if reg == nil {
		return BackendDevice{}, fmt.Errorf("%s: %w: %s", d, ErrNoBackend, missingBackend(d.Kind))
	}
	count := int(C.ggml_backend_reg_dev_count(reg))
	if d.Index >= count {
		var have []string
		for i := range count {
			bd := backendDevice(reg, i)
			have = append(have, fmt.Sprintf("%s:%d %s", d.Kind, i, bd.Description))
		}
		if count == 0 {
			return BackendDevice{}, fmt.Errorf("%s does not exist: the %s backend found no device", d, names[0])
		}
		return BackendDevice{}, fmt.Errorf("%s does not exist: the %s backend has %d (%s)", d, names[0], count, strings.Join(have, ", "))
	}
	return backendDevice(reg, d.Index), nil
}

// missingBackend explains why no backend of kind is loaded.
func missingBackend(kind device.Kind) string {
	prefix := "libggml-" + strings.ToLower(backendNames[kind][0])
	var failed []string
	for _, b := range backends {
		if strings.HasPrefix(filepath.Base(b.Path), prefix) && b.Err != nil {
			failed = append(failed, b.Err.Error())
		}
	}
	if len(failed) > 0 {
		return strings.Join(failed, "; ")
	}
	where := "nowhere (the executable's folder is unknown)"
	if len(searched) > 0 {
		where = strings.Join(searched, ", ")
	}
	if kind == device.CUDA {
		return fmt.Sprintf("no %s.so in %s; build it with `make cuda`, or set %s", prefix, where, BackendPathEnv)
	}
	return fmt.Sprintf("no %s backend in %s", kind, where)
}
