package testkit

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// TestMain doubles as the daemon of TestStartDaemon: with TESTKIT_DAEMON
// set, the test binary serves /health on port 0 until SIGTERM, as rbee's
// daemons do.
func TestMain(m *testing.M) {
	if os.Getenv("TESTKIT_DAEMON") != "" {
		os.Exit(fakeDaemon())
	}
	os.Exit(CheckLeaks(m))
}

func fakeDaemon() int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	fmt.Println("starting")
	fmt.Printf("listening http://%s\n", ln.Addr())
	go func() { _ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})) }()
	<-term
	fmt.Println("stopped")
	return 0
}

func TestStartDaemon(t *testing.T) {
	var log strings.Builder
	cmd := Command(t, os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, "TESTKIT_DAEMON=1")
	d := StartDaemon(t, cmd, &log) // read only after the exit, which Stop waits for
	resp, err := http.Get(d.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.Stop(t)
	if d.Err != nil {
		t.Fatalf("exit after SIGTERM: %v", d.Err)
	}
	if got := log.String(); !strings.Contains(got, "starting") || !strings.Contains(got, "stopped") || strings.Contains(got, "listening") {
		t.Fatalf("log %q: want the other lines, without the listening one", got)
	}
}

func TestLeakedGoroutinesAreFound(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	go func() {
		close(started)
		<-stop
	}()
	<-started
	found := func() bool {
		for _, g := range leakedGoroutines() {
			if strings.Contains(g, "TestLeakedGoroutinesAreFound") {
				return true
			}
		}
		return false
	}
	if !found() {
		t.Fatal("a blocked goroutine of the test was not listed")
	}
	close(stop)
	WaitFor(t, "the goroutine to end and not be listed", func() bool { return !found() })
}

func TestReceive(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if v := Receive(t, "a value", ch); v != 7 {
		t.Fatalf("got %d", v)
	}
}

// A reserved port is not handed out as a free one, refuses connections,
// and can still be bound by the program it is given to.
func TestReservePort(t *testing.T) {
	p := ReservePortT(t)
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		got := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if got == p.Port {
			t.Fatal("the reserved port was handed out as a free one")
		}
	}
	if c, err := net.Dial("tcp", "127.0.0.1:"+p.String()); err == nil {
		c.Close()
		t.Fatal("a reserved port accepted a connection")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+p.String())
	if err != nil {
		t.Fatalf("the program given the port cannot listen on it: %v", err)
	}
	ln.Close()
	q := ReservePortT(t)
	ln, err = q.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := q.Listen(); err == nil {
		t.Fatal("listened twice")
	}
}
