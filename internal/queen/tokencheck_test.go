package queen

import (
	"context"
	"net"
	"strings"
	"testing"
)

// A queen_token nobody can send (a blank, a short one) is refused at start:
// the queen would otherwise listen beyond loopback behind it.
func TestServeRefusesAWeakToken(t *testing.T) {
	for _, tok := range []string{" ", "secret", "0123456789 abcdef"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := New(Options{URL: "http://queen.test", Token: tok, HiveTokenDir: t.TempDir()})
		err = s.Serve(context.Background(), ln)
		s.Close()
		if err == nil || !strings.Contains(err.Error(), "queen_token") {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}
