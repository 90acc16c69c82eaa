package supervise

import "syscall"

// The child dies with its parent (SIGTERM, so it can stop its own children)
// and leads its own process group.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
