package hive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/rbee/rbee/internal/httpapi"
)

// maxFirstLine bounds the "listening" line a worker prints first.
const maxFirstLine = 1 << 10

// firstLine copies a worker's stdout to its log and hands the first line
// (what the worker says it listens on) to whoever waits on lines. Only the
// goroutine that copies the child's stdout writes to it.
type firstLine struct {
	out   io.Writer
	buf   []byte
	done  bool
	lines chan string // buffered: gets exactly one value
}

func newFirstLine(out io.Writer) *firstLine {
	return &firstLine{out: out, lines: make(chan string, 1)}
}

func (f *firstLine) Write(p []byte) (int, error) {
	if !f.done {
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			f.buf = append(f.buf, p[:i]...)
			f.finish()
		} else if f.buf = append(f.buf, p...); len(f.buf) > maxFirstLine {
			f.finish()
		}
	}
	// A log that cannot be written must not stop the worker: its stdout
	// pipe would fill and block it.
	_, _ = f.out.Write(p)
	return len(p), nil
}

func (f *firstLine) finish() {
	f.done = true
	line := f.buf
	if len(line) > maxFirstLine {
		line = line[:maxFirstLine]
	}
	f.lines <- strings.TrimRight(string(line), "\r")
	f.buf = nil
}

// parseListening checks the line "listening http://HOST:PORT" and returns
// the URL. The hive started the worker on 127.0.0.1, so anything but a
// loopback address is refused: the URL goes to the queen.
func parseListening(line string) (string, error) { return parseListeningOn(line, false) }

// parseListeningOn is parseListening for a worker told to listen on a
// non-loopback address (anyHost): any address the queen can use will do.
func parseListeningOn(line string, anyHost bool) (string, error) {
	rest, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		return "", fmt.Errorf("its first line is %.120q, not \"listening http://HOST:PORT\"", line)
	}
	u, err := url.Parse(rest)
	if err != nil || u.Scheme != "http" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("it says it listens on %.120q, which is not http://HOST:PORT", rest)
	}
	if !anyHost && !httpapi.IsLoopback(u.Hostname()) {
		return "", fmt.Errorf("it listens on %q, not on a loopback address", u.Host)
	}
	if ip := net.ParseIP(u.Hostname()); anyHost && (u.Hostname() == "" || ip != nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("it listens on %q, which is no address to reach it at", u.Host)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil || port < 1 || port > 65535 {
		return "", fmt.Errorf("it listens on %q, which has no valid port", u.Host)
	}
	return "http://" + u.Host, nil
}

// tail keeps the end of a worker's stderr in memory, so an error can say
// what the worker said last before it died.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line, at most 512 bytes of it.
func (t *tail) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimRight(string(t.buf), " \t\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// said renders the last stderr line for an error message.
func (t *tail) said() string {
	if l := t.lastLine(); l != "" {
		return "its last words on stderr: " + l
	}
	return "it wrote nothing on stderr"
}

// exitText describes how a process ended.
func exitText(err error) string {
	var exit *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &exit):
		return exit.String()
	}
	return err.Error()
}
