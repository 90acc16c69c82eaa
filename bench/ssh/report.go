package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// size is a program's size in MB, for the table.
func size(dir, name string) string {
	st, err := os.Stat(filepath.Join(dir, name))
	if err != nil {
		return name
	}
	return fmt.Sprintf("%s %.1f MB", name, float64(st.Size())/1e6)
}

func sshdVersion() string {
	// sshd -V is not a flag; an unknown one makes it print its version.
	out, _ := exec.Command("/usr/sbin/sshd", "-V").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if v, ok := strings.CutPrefix(line, "OpenSSH_"); ok {
		v, _, _ = strings.Cut(v, ",")
		return v
	}
	return "?"
}

func runtimeCPUs() int { return runtime.NumCPU() }
