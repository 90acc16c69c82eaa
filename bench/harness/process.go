package harness

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is a program a benchmark started; it dies with the benchmark.
type Proc struct {
	Cmd *exec.Cmd
}

// PID is the program's process id.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM and waits, then kills after 10 s.
func (p *Proc) Stop() {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-done
	}
}

// Start runs a program that prints "listening URL" as its first line, as
// the queen and the worker do with --port 0, and returns that URL. Its
// stderr goes to logPath (nil: this process's stderr when logPath is "").
func Start(path string, env []string, logPath string, args ...string) (*Proc, string, error) {
	var stderr io.Writer = os.Stderr
	if logPath != "" {
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, "", err
		}
		defer logf.Close()
		stderr = logf
	}
	cmd := exec.Command(path, args...)
	cmd.Env, cmd.Stderr = env, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("%w (run make build first)", err)
	}
	p := &Proc{Cmd: cmd}
	rd := bufio.NewReader(out)
	line, err := rd.ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, rd) }()
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.Stop()
		msg := ""
		if logPath != "" {
			b, _ := os.ReadFile(logPath)
			msg = ": " + string(b)
		}
		return nil, "", fmt.Errorf("%s did not say where it listens (%q, %v)%s", path, line, err, msg)
	}
	if _, _, err := net.SplitHostPort(strings.TrimPrefix(u, "http://")); err != nil {
		p.Stop()
		return nil, "", fmt.Errorf("%s listens at %q", path, u)
	}
	return p, u, nil
}

// IsolatedEnv is this process's environment with HOME and the XDG
// directories moved into home, and no RBEE_ variables: the programs it
// starts see none of the user's rbee files.
func IsolatedEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && !strings.HasPrefix(k, "XDG_") && !strings.HasPrefix(k, "RBEE_") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
}

// IsolateHive gives the local hive of home's hives.conf a free port, so a
// benchmark's queen never meets a hive of the user's.
func IsolateHive(home string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := filepath.Join(home, "config", "rbee")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hives.conf"), fmt.Appendf(nil, "Host localhost\n  HivePort %d\n", port), 0o600)
}
