package hive

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strconv"

	"github.com/rbee/rbee/internal/wire"
)

// capabilities describes this machine for the queen's scheduling.
func capabilities(hiveID string) wire.HiveCapabilities {
	total, free := memInfo()
	return wire.HiveCapabilities{
		HiveID:        hiveID,
		OS:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		CPUCores:      runtime.NumCPU(),
		RAMTotalBytes: total,
		RAMFreeBytes:  free,
		GPUs:          detectGPUs(context.Background()),
	}
}

// memInfo reads total and available memory from /proc/meminfo; both are 0
// where there is none (not Linux).
func memInfo() (total, free uint64) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	return parseMemInfo(data)
}

func parseMemInfo(data []byte) (total, free uint64) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseUint(string(f[1]), 10, 64)
		if err != nil || kb > 1<<53 {
			continue
		}
		switch string(f[0]) {
		case "MemTotal:":
			total = kb << 10
		case "MemAvailable:":
			free = kb << 10
		}
	}
	return total, free
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
