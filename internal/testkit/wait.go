// Package testkit holds what the tests of every package share: one way to
// wait for an event, one way to start a daemon on port 0 and learn its
// address, and a goroutine-leak check. The one fake worker is its
// subpackage fakeworker. testkit imports no rbee package, so that the
// in-package tests of every one of them can use it; it is imported by tests
// only.
package testkit

import (
	"testing"
	"time"
)

// Patience bounds every wait of the tests: long enough that a loaded 2-core
// CI machine never trips it, so that a timeout means "never", not "slow".
const Patience = 60 * time.Second

// WaitFor polls cond until it holds, failing the test after Patience. A
// test says what it waits for; it never asserts how long that took.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Patience)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", Patience, what)
		}
		time.Sleep(delay)
	}
}

// Receive waits for a value on ch, failing the test after Patience.
func Receive[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(Patience):
		t.Fatalf("gave up after %s waiting for %s", Patience, what)
		panic("unreachable")
	}
}
