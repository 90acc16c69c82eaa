package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LibDir is the folder, next to the rbee executables, where the worker
// looks for GPU backend libraries first and where `make cuda` puts them.
const LibDir = "lib"

// ManifestName is the file `make cuda` writes beside the libraries it built.
const ManifestName = "rbee-backends.json"

// Manifest describes the backend libraries of a lib folder: what a hive
// install checks before it copies them to a host.
type Manifest struct {
	// CUDAArchitectures is CMake's CMAKE_CUDA_ARCHITECTURES list the CUDA
	// backend was built for, e.g. ["90"] or ["86-real", "90"].
	CUDAArchitectures []string `json:"cuda_architectures"`
	// CUDAVersion is the toolkit's release, e.g. "13.0": a host needs the
	// libcudart and libcublas of that major version.
	CUDAVersion string `json:"cuda_version"`
}

// ReadManifest reads dir/ManifestName.
func ReadManifest(dir string) (Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %v", filepath.Join(dir, ManifestName), err)
	}
	return m, nil
}

// InstallFiles lists what a hive install copies from a lib folder to a
// host's: the ggml libraries (libggml-*.so*) and the manifest, as paths
// under dir. A folder that does not exist holds nothing: the host gets a
// CPU-only worker.
func InstallFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue // symlinks would copy as links to nothing
		}
		if name == ManifestName || (strings.HasPrefix(name, "libggml-") && strings.Contains(name, ".so")) {
			out = append(out, filepath.Join(dir, name))
		}
	}
	slices.Sort(out)
	return out, nil
}

// Runs reports whether the CUDA code of m runs on a GPU of compute
// capability cc ("8.6"), and if not, says how to build one that does.
func (m Manifest) Runs(cc string) error {
	major, minor, ok := parseCC(cc)
	if !ok {
		return fmt.Errorf("compute capability %.20q is not MAJOR.MINOR", cc)
	}
	for _, a := range m.CUDAArchitectures {
		if archRuns(a, major, minor) {
			return nil
		}
	}
	return fmt.Errorf("the CUDA backend was built for %s, which cannot run on a GPU of compute capability %s; rebuild it with: make cuda CUDA_ARCHITECTURES=\"%s\"",
		strings.Join(m.CUDAArchitectures, ";"), cc, strings.Join(append(slices.Clone(m.CUDAArchitectures), strconv.Itoa(major)+strconv.Itoa(minor)), ";"))
}

// archRuns applies CUDA's compatibility rules to one CMake architecture:
// "XY" builds machine code (SASS) and PTX, "XY-real" only SASS, "XY-virtual"
// only PTX. SASS for X.Y runs on X.Z with Z >= Y; PTX is compiled at load
// time for any X.Y or newer. An "a" suffix (90a) makes either run on X.Y
// alone.
func archRuns(arch string, major, minor int) bool {
	switch arch {
	case "all", "all-major":
		return true
	}
	num, kind, _ := strings.Cut(arch, "-")
	specific := strings.HasSuffix(num, "a")
	num = strings.TrimSuffix(num, "a")
	if len(num) < 2 || !isDigits(num, 3) {
		return false
	}
	am, _ := strconv.Atoi(num[:len(num)-1])
	an := int(num[len(num)-1] - '0')
	if specific {
		return major == am && minor == an
	}
	sass := kind == "" || kind == "real"
	ptx := kind == "" || kind == "virtual"
	return (sass && major == am && minor >= an) || (ptx && (major > am || (major == am && minor >= an)))
}

func parseCC(cc string) (major, minor int, ok bool) {
	if !validCC(cc) {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(cc, ".")
	major, _ = strconv.Atoi(a)
	minor, _ = strconv.Atoi(b)
	return major, minor, true
}

// GPUInstall is what a hive install copies to a host for its GPUs.
type GPUInstall struct {
	// Files are paths under the local lib folder; each goes to the host's
	// <BinaryPath>/lib/, next to its llm-worker-rbee.
	Files []string
	// Note says in one line what was decided and why, for the narration.
	Note string
}

// PlanGPUInstall decides whether a host whose nvidia-smi lists gpus gets the
// CUDA backend of libDir (`make cuda` builds it there; see the README for
// why rbee copies a library built elsewhere rather than building on each
// host). It copies the backend when the host has a GPU that can run it,
// and otherwise copies nothing and says what to do: the host's workers then
// run on the CPU. Only reading libDir can fail.
func PlanGPUInstall(libDir string, gpus []GPU) (GPUInstall, error) {
	files, err := InstallFiles(libDir)
	if err != nil {
		return GPUInstall{}, err
	}
	if len(gpus) == 0 {
		return GPUInstall{Note: "the host has no NVIDIA GPU: its workers run on the CPU"}, nil
	}
	var names, ccs []string
	for _, g := range gpus {
		names = append(names, g.Name)
		if g.ComputeCapability != "" && !slices.Contains(ccs, g.ComputeCapability) {
			ccs = append(ccs, g.ComputeCapability)
		}
	}
	archs := strings.ReplaceAll(strings.Join(ccs, ";"), ".", "")
	hasCUDA := slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == "libggml-cuda.so" })
	if !hasCUDA {
		return GPUInstall{Note: fmt.Sprintf("the host has %s, but %s holds no CUDA backend to copy: build one with make cuda CUDA_ARCHITECTURES=%q and install again; until then its workers run on the CPU",
			strings.Join(names, ", "), libDir, archs)}, nil
	}
	m, err := ReadManifest(libDir)
	if err != nil {
		return GPUInstall{Files: files, Note: fmt.Sprintf("copying the CUDA backend for %s without knowing what it was built for (%v)", strings.Join(names, ", "), err)}, nil
	}
	var cannot []string
	var lastErr error
	for _, g := range gpus {
		if g.ComputeCapability == "" {
			continue
		}
		if err := m.Runs(g.ComputeCapability); err != nil {
			cannot = append(cannot, fmt.Sprintf("%s (%s)", g.Device(), g.ComputeCapability))
			lastErr = err
		}
	}
	if lastErr != nil && len(cannot) == len(gpus) {
		return GPUInstall{Note: fmt.Sprintf("not copying the CUDA backend: %v; until then the host's workers run on the CPU", lastErr)}, nil
	}
	note := fmt.Sprintf("copying the CUDA backend (built for %s with CUDA %s) for %s; the host needs that CUDA major version's libcudart and libcublas",
		strings.Join(m.CUDAArchitectures, ";"), m.CUDAVersion, strings.Join(names, ", "))
	if len(cannot) > 0 {
		note += fmt.Sprintf("; it cannot run on %s: %v", strings.Join(cannot, ", "), lastErr)
	}
	return GPUInstall{Files: files, Note: note}, nil
}
