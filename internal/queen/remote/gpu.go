package remote

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/device"
	"github.com/rbee/rbee/internal/sshx"
)

// nvidiaScript runs nvidia-smi with its arguments where there is one; no
// output means no NVIDIA driver, so no GPU for rbee.
const nvidiaScript = `command -v nvidia-smi >/dev/null 2>&1 || exit 0
exec nvidia-smi "$@"`

// installGPU copies the GPU backend built here (`make cuda`, into lib/
// beside the worker) to <BinaryPath>/lib on the host when the host's
// NVIDIA GPUs can run it; device.PlanGPUInstall decides, and why is
// narrated. It returns the paths it copied to.
func (r *remote) installGPU(workerPath string) ([]string, error) {
	libDir := filepath.Join(filepath.Dir(workerPath), device.LibDir)
	files, err := device.InstallFiles(libDir)
	if err != nil || len(files) == 0 {
		return nil, err // nothing built here: the host gets a CPU worker
	}
	var gpus []device.GPU
	out, err := r.c.Run(r.ctx(), nil, nvidiaScript, device.SMIQuery...)
	switch {
	case err != nil:
		r.j.Narrate("install", fmt.Sprintf("nvidia-smi on %s failed (%v): not copying the GPU backend; its workers run on the CPU", r.h.Alias, err))
		return nil, nil
	case len(strings.TrimSpace(string(out))) > 0:
		if gpus, err = device.ParseNvidiaSMI(out); err != nil {
			r.j.Narrate("install", fmt.Sprintf("cannot read nvidia-smi on %s (%v): not copying the GPU backend", r.h.Alias, err))
			return nil, nil
		}
	}
	plan, err := device.PlanGPUInstall(libDir, gpus)
	if err != nil {
		return nil, err
	}
	r.j.Narrate("install", fmt.Sprintf("%s: %s", r.h.Alias, plan.Note))
	if len(plan.Files) == 0 {
		return nil, nil
	}
	dest := path.Join(r.dir, device.LibDir)
	if err := r.c.MkdirAll(dest); err != nil {
		return nil, r.fail(err)
	}
	var copied []string
	for _, f := range plan.Files {
		p := path.Join(dest, filepath.Base(f))
		start := time.Now()
		if _, err := r.c.Upload(r.ctx(), f, p, 0o644); err != nil {
			return nil, r.fail(err)
		}
		copied = append(copied, p)
		r.j.Narrate("install", fmt.Sprintf("Copied %s to %s:%s in %s (SHA-256 checked on the host)", filepath.Base(f), r.h.Alias, p, time.Since(start).Round(time.Millisecond)))
	}
	return copied, nil
}

// uninstallGPU removes what installGPU copied: the ggml libraries and the
// manifest in <BinaryPath>/lib, then the folder if that left it empty.
func uninstallGPU(c *sshx.Client, dir string) ([]string, error) {
	lib := path.Join(dir, device.LibDir)
	names, err := c.List(lib)
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		if n != device.ManifestName && !(strings.HasPrefix(n, "libggml-") && strings.Contains(n, ".so")) {
			continue
		}
		p := path.Join(lib, n)
		if ok, err := c.Remove(p); err != nil {
			return removed, err
		} else if ok {
			removed = append(removed, p)
		}
	}
	if len(names) > 0 {
		_, _ = c.RemoveDir(lib)
	}
	return removed, nil
}
