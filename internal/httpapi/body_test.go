package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func startDaemon(t *testing.T, d Daemon) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

// A body that trickles in is cut off with a 408 and the connection closed;
// a body that arrived lets the answer stream for longer than the bound.
func TestBoundBodies(t *testing.T) {
	const bound = 200 * time.Millisecond
	addr := startDaemon(t, Daemon{
		BodyTimeout: bound,
		Handler: Handler(func(w http.ResponseWriter, r *http.Request) error {
			var v map[string]any
			if err := DecodeJSON(w, r, 1<<20, &v); err != nil {
				return err
			}
			w.WriteHeader(http.StatusOK)
			for range 4 {
				// A stream that outlives the body's bound is not cut.
				select {
				case <-r.Context().Done():
					return nil
				case <-time.After(bound):
				}
				fmt.Fprintln(w, "tick")
				http.NewResponseController(w).Flush()
			}
			return nil
		}),
	})

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request_timeout") {
		t.Fatalf("trickled body: %d %s", resp.StatusCode, body)
	}

	resp, err = http.Post("http://"+addr+"/x", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Count(string(got), "tick") != 4 {
		t.Fatalf("stream after a body: %d %q", resp.StatusCode, got)
	}
}
