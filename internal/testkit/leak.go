package testkit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// CheckLeaks runs a package's tests, then fails the run when goroutines of
// the package are still alive once their grace is over: call it from
// TestMain as os.Exit(testkit.CheckLeaks(m)).
func CheckLeaks(m *testing.M) int {
	code := m.Run()
	if code != 0 {
		return code
	}
	// Goroutines that stop asynchronously (closed connections, timers that
	// fire) get time to do so; a leak is one that never does.
	deadline := time.Now().Add(leakGrace)
	for {
		leaked := leakedGoroutines()
		if len(leaked) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "testkit: %d goroutines leaked by the tests:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leakedGoroutines lists the stacks of goroutines that are neither the
// runtime's, the testing package's, nor the idle connections of
// net/http's shared transport.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if g == "" || benign(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// leakGrace is how long goroutines get to finish after the tests: those
// that end by themselves do within milliseconds, even on a loaded machine.
const leakGrace = 10 * time.Second

func benign(stack string) bool {
	for _, s := range []string{
		"testkit.leakedGoroutines",
		"testing.(*M).",
		"testing.tRunner",
		"testing.runTests",
		"runtime.goexit0",
		"created by runtime.gc",
		"runtime.ensureSigM",
		"os/signal.signal_recv",
		"os/signal.loop",
		"signal.Notify",
		"net/http.(*persistConn).readLoop",
		"net/http.(*persistConn).writeLoop",
		"runtime.ReadTrace",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return strings.HasPrefix(stack, "goroutine 1 [")
}
