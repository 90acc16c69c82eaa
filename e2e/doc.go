// Package e2e holds the end-to-end tests of rbee: they build the four
// programs and run them as real processes, each test in its own HOME with
// its own ports. `go test -short` skips them.
package e2e
