// Package device names the devices a worker runs on (cpu, cuda:N, metal:N),
// finds a machine's NVIDIA GPUs with nvidia-smi, estimates how many layers
// of a model fit in a GPU's memory, and says which GPU backend libraries a
// worker installation carries. It is pure Go: the hive and the CLI use it
// with CGO_ENABLED=0.
package device

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is a family of devices.
type Kind string

// The device kinds a worker may be asked to run on.
const (
	CPU   Kind = "cpu"
	CUDA  Kind = "cuda"
	Metal Kind = "metal"
)

// MaxIndex is the largest GPU index accepted in a device name.
const MaxIndex = 255

// Device is a parsed device name. The zero value is not valid; CPU is
// Device{Kind: CPU}.
type Device struct {
	Kind  Kind
	Index int // GPU index within its kind; 0 for the CPU
}

// Parse parses "cpu", "cuda:N" or "metal:N" (N from 0 to MaxIndex, written
// without leading zeros, so that each device has exactly one name).
func Parse(s string) (Device, error) {
	if s == string(CPU) {
		return Device{Kind: CPU}, nil
	}
	kind, num, ok := strings.Cut(s, ":")
	if !ok || (kind != string(CUDA) && kind != string(Metal)) {
		return Device{}, fmt.Errorf("device %.40q: want cpu, cuda:N or metal:N", s)
	}
	if num == "" || len(num) > 3 || (len(num) > 1 && num[0] == '0') {
		return Device{}, fmt.Errorf("device %.40q: the index must be a number from 0 to %d", s, MaxIndex)
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > MaxIndex || strings.ContainsAny(num, "+-") {
		return Device{}, fmt.Errorf("device %.40q: the index must be a number from 0 to %d", s, MaxIndex)
	}
	return Device{Kind: Kind(kind), Index: n}, nil
}

// String is the device's name as Parse accepts it.
func (d Device) String() string {
	if d.Kind == CPU {
		return string(CPU)
	}
	return string(d.Kind) + ":" + strconv.Itoa(d.Index)
}

// IsGPU reports whether d is an accelerator rather than the CPU.
func (d Device) IsGPU() bool { return d.Kind != CPU }
