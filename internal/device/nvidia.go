package device

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// GPU is one NVIDIA GPU as nvidia-smi reports it.
type GPU struct {
	Index             int // nvidia-smi's index: cuda:Index when CUDA orders devices by PCI bus id
	Name              string
	MemoryTotalBytes  uint64 // 0 where nvidia-smi reports none (e.g. [N/A])
	MemoryFreeBytes   uint64
	ComputeCapability string // "9.0"; empty where nvidia-smi reports none
}

// Device is the GPU's device name, e.g. cuda:0.
func (g GPU) Device() Device { return Device{Kind: CUDA, Index: g.Index} }

// ErrNoNvidiaSMI means nvidia-smi is not installed: the machine has no
// NVIDIA driver, so no NVIDIA GPU that rbee can use.
var ErrNoNvidiaSMI = errors.New("nvidia-smi is not installed (no NVIDIA driver)")

// SMIQuery is the nvidia-smi command line DetectNVIDIA runs.
var SMIQuery = []string{"--query-gpu=index,name,memory.total,memory.free,compute_cap", "--format=csv,noheader,nounits"}

// Limits on what DetectNVIDIA believes: anything beyond them is a broken or
// impostor nvidia-smi.
const (
	maxGPUs      = 64
	maxSMIOutput = 64 << 10
	maxGPUName   = 128
	smiTimeout   = 10 * time.Second
)

// DetectNVIDIA runs nvidia-smi (the first on $PATH) and returns the GPUs it
// lists. No nvidia-smi is ErrNoNvidiaSMI; a failing one (driver not loaded,
// say) is an error carrying the first line it printed.
func DetectNVIDIA(ctx context.Context) ([]GPU, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, ErrNoNvidiaSMI
	}
	ctx, cancel := context.WithTimeout(ctx, smiTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, SMIQuery...)
	var out, errOut limitedBuffer
	out.max, errOut.max = maxSMIOutput, 4<<10
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("nvidia-smi did not answer within %s", smiTimeout)
		}
		said := firstLine(errOut.Bytes())
		if said == "" {
			said = firstLine(out.Bytes()) // nvidia-smi prints its failures on stdout
		}
		if said == "" {
			said = err.Error()
		}
		return nil, fmt.Errorf("nvidia-smi failed: %s", said)
	}
	if out.over {
		return nil, fmt.Errorf("nvidia-smi printed more than %d bytes", maxSMIOutput)
	}
	return ParseNvidiaSMI(out.Bytes())
}

// ParseNvidiaSMI parses the output of nvidia-smi with SMIQuery: one line per
// GPU, "index, name, total MiB, free MiB, compute capability". Memory that
// is not a number ([N/A], [Not Supported]) is 0; a line that is malformed in
// any other way makes the whole output an error.
func ParseNvidiaSMI(out []byte) ([]GPU, error) {
	gpus := []GPU{}
	seen := map[int]bool{}
	for n, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if len(gpus) == maxGPUs {
			return nil, fmt.Errorf("nvidia-smi lists more than %d GPUs", maxGPUs)
		}
		g, err := parseGPULine(line)
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi line %d: %v", n+1, err)
		}
		if seen[g.Index] {
			return nil, fmt.Errorf("nvidia-smi line %d: GPU index %d listed twice", n+1, g.Index)
		}
		seen[g.Index] = true
		gpus = append(gpus, g)
	}
	return gpus, nil
}

func parseGPULine(line string) (GPU, error) {
	f := strings.Split(line, ",")
	if len(f) < 5 {
		return GPU{}, fmt.Errorf("want 5 comma-separated fields, got %d in %.80q", len(f), line)
	}
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	// A name could hold a comma; the other fields cannot.
	idx, cc := f[0], f[len(f)-1]
	total, free := f[len(f)-3], f[len(f)-2]
	name := strings.Join(f[1:len(f)-3], ", ")

	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i > MaxIndex {
		return GPU{}, fmt.Errorf("index %.20q is not a number from 0 to %d", idx, MaxIndex)
	}
	if name == "" || len(name) > maxGPUName || strings.IndexFunc(name, notPrintable) >= 0 {
		return GPU{}, fmt.Errorf("GPU %d: name %.40q is empty, too long or not printable", i, name)
	}
	g := GPU{Index: i, Name: name, MemoryTotalBytes: mib(total), MemoryFreeBytes: mib(free)}
	if validCC(cc) {
		g.ComputeCapability = cc
	} else if !strings.HasPrefix(cc, "[") { // [N/A] is allowed, garbage is not
		return GPU{}, fmt.Errorf("GPU %d: compute capability %.20q is not MAJOR.MINOR", i, cc)
	}
	return g, nil
}

// mib converts a MiB count to bytes; what is not a plausible count is 0.
func mib(s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > 1<<30 { // a PiB of GPU memory is not a GPU
		return 0
	}
	return n << 20
}

func validCC(s string) bool {
	major, minor, ok := strings.Cut(s, ".")
	return ok && isDigits(major, 2) && isDigits(minor, 2)
}

func isDigits(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	s := strings.TrimSpace(string(line))
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.Map(func(r rune) rune {
		if notPrintable(r) {
			return -1
		}
		return r
	}, s)
}

// limitedBuffer keeps the first max bytes written and notes the rest.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
