package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// Shutdown goes in the documented order: open streams end first, then the
// listener closes, then the children stop.
func TestDaemonShutdownOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu     sync.Mutex
		order  []string
		ended  = make(chan struct{})
		inside = make(chan struct{})
	)
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	d := Daemon{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			close(inside)
			<-ended // a stream that lasts until the daemon ends it
			io.WriteString(w, "end\n")
			note("stream ended")
		}),
		EndStreams: func() { note("end streams"); close(ended) },
		StopChildren: func() error {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				c.Close()
				note("listener still open")
			}
			note("stop children")
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	<-inside
	cancel()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if string(body) != "end\n" {
		t.Fatalf("the stream did not end cleanly: %q", body)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"end streams", "stream ended", "stop children"}
	if len(order) != len(want) {
		t.Fatalf("order %q, want %q", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %q, want %q", order, want)
		}
	}
}
