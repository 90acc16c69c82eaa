package remote

import (
	"debug/elf"
	"debug/macho"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/wire"
)

// platform is a GOOS/GOARCH pair, e.g. "linux/amd64".
type platform string

// binaryPlatform reads which OS and CPU an executable is built for from
// its header (ELF or Mach-O); a script or anything else is an error.
func binaryPlatform(path string) (platform, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if ef, err := elf.NewFile(f); err == nil {
		arch, ok := map[elf.Machine]string{
			elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386",
			elf.EM_ARM: "arm", elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
		}[ef.Machine]
		if !ok {
			return "", fmt.Errorf("%s is an ELF executable for %s, which rbee does not know", path, ef.Machine)
		}
		goos := "linux"
		if ef.OSABI == elf.ELFOSABI_FREEBSD {
			goos = "freebsd"
		}
		return platform(goos + "/" + arch), nil
	}
	if mf, err := macho.NewFile(f); err == nil {
		switch mf.Cpu {
		case macho.CpuArm64:
			return "darwin/arm64", nil
		case macho.CpuAmd64:
			return "darwin/amd64", nil
		}
		return "", fmt.Errorf("%s is a Mach-O executable for %s, which rbee does not know", path, mf.Cpu)
	}
	return "", fmt.Errorf("%s is not an executable program (ELF or Mach-O)", path)
}

// unamePlatform maps `uname -sm` ("Linux x86_64", "Darwin arm64") to a
// platform.
func unamePlatform(out string) (platform, error) {
	f := strings.Fields(out)
	if len(f) != 2 {
		return "", fmt.Errorf("unexpected `uname -sm` answer %.80q", out)
	}
	goos, ok := map[string]string{"Linux": "linux", "Darwin": "darwin", "FreeBSD": "freebsd"}[f[0]]
	if !ok {
		return "", fmt.Errorf("the host runs %.40s, which rbee does not support", f[0])
	}
	arch, ok := map[string]string{
		"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
		"i386": "386", "i686": "386", "armv7l": "arm", "riscv64": "riscv64", "ppc64le": "ppc64le", "s390x": "s390x",
	}[f[1]]
	if !ok {
		return "", fmt.Errorf("the host's CPU is %.40s, which rbee does not know", f[1])
	}
	return platform(goos + "/" + arch), nil
}

// installFile is one program install copies to a host.
type installFile struct {
	name  string // its name on the host
	local string
}

// installFiles are the hive and worker programs beside this queen (or the
// configured ones), with the platform they are built for.
func (l *Lifecycle) installFiles() ([]installFile, platform, error) {
	hivePath, err := l.fleet.Local.Binary()
	if err != nil {
		return nil, "", err
	}
	workerPath := l.opt.WorkerBinary
	if workerPath == "" {
		workerPath = filepath.Join(filepath.Dir(hivePath), workerProgram)
	}
	files := []installFile{{fleet.HiveProgram, hivePath}, {workerProgram, workerPath}}
	var plat platform
	for _, f := range files {
		p, err := binaryPlatform(f.local)
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", wire.Errorf(wire.CodeNotFound, "cannot find %s to install (looked at %s); run make build", f.name, f.local)
		}
		if err != nil {
			return nil, "", wire.Errorf(wire.CodeInternal, "%s: %v", f.name, err)
		}
		if plat != "" && p != plat {
			return nil, "", wire.Errorf(wire.CodeInternal, "%s is built for %s but %s for %s", files[0].local, plat, f.local, p)
		}
		plat = p
	}
	return files, plat, nil
}
