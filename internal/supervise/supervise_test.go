package supervise

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestStopGraceful(t *testing.T) {
	p, err := Start(Spec{Path: "sleep", Args: []string{"30"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("SIGTERM was not enough for sleep?")
	}
	if alive(p.PID()) {
		t.Fatal("still alive")
	}
}

func TestStopKillsGroupAfterGrace(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	// The child ignores SIGTERM and has a grandchild that does too.
	script := `trap '' TERM; sh -c 'trap "" TERM; echo $$ > ` + pidFile + `; sleep 30' & sleep 30`
	p, err := Start(Spec{Path: "sh", Args: []string{"-c", script}, Grace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			grandchild, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
	}
	if grandchild == 0 {
		t.Fatal("grandchild did not start")
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); alive(grandchild); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("grandchild survived the group kill")
		}
	}
}

func TestExitIsReaped(t *testing.T) {
	p, err := Start(Spec{Path: "sh", Args: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop after exit: %v", err)
	}
}
