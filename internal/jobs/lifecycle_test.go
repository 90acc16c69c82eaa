package jobs

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

func TestEmitRejectsBadEvents(t *testing.T) {
	cases := map[string]func(j *Job){
		"bad_type":  func(j *Job) { j.Emit(wire.Event{Type: "token\ndata: x"}) },
		"no_json":   func(j *Job) { j.Emit(wire.NewResult(func() {})) },
		"oversized": func(j *Job) { j.Emit(wire.NewResult(strings.Repeat("a", maxEventBytes))) },
	}
	runs := map[string]RunFunc{}
	for name, emit := range cases {
		runs[name] = func(j *Job) error {
			emit(j)
			j.Emit(wire.NewResult("not reached"))
			return nil
		}
	}
	e := newEnv(t, Options{}, runs)
	for name := range cases {
		_, _, err := e.collect(context.Background(), e.submit(t, name))
		if re := asRemote(t, err); re.Code != wire.CodeInternal {
			t.Fatalf("%s: %+v", name, re)
		}
	}
}

func TestCloseCancelsRunningJobs(t *testing.T) {
	reg := NewRegistry(Options{})
	started := make(chan struct{})
	j, err := reg.Create(wire.Operation{Operation: "wait"}, func(j *Job) error {
		close(started)
		<-j.Context().Done()
		return j.Context().Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrShutdown) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}
	evs, _, _, done, _ := j.read(0, nil, 10)
	if !done || len(evs) != 1 || !bytes.Contains(evs[0].data, []byte(`"code":"cancelled"`)) {
		t.Fatalf("events %q done %v", evs, done)
	}
	if _, err := reg.Create(wire.Operation{}, func(*Job) error { return nil }); err == nil {
		t.Fatal("create after close succeeded")
	}

	// A run function that ignores cancellation makes Close report it.
	stuck := NewRegistry(Options{CloseTimeout: 20 * time.Millisecond})
	release := make(chan struct{})
	defer close(release)
	if _, err := stuck.Create(wire.Operation{}, func(*Job) error { <-release; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := stuck.Close(); err == nil {
		t.Fatal("close did not report the stuck job")
	}
}

func TestDispatchErrorWithoutStatus(t *testing.T) {
	reg := NewRegistry(Options{})
	defer reg.Close()
	mux := http.NewServeMux()
	reg.Mount(mux, func(wire.Operation) (RunFunc, error) {
		return nil, &wire.Error{Code: wire.CodeBadRequest, Message: "no status"}
	})
	rec := newRecorder(`{"operation":"status"}`, mux)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "no status") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

// A quiet job's cancellation is only its context's: the run function ends
// the stream (the worker's end event), and nothing is logged in its place.
func TestQuietCancel(t *testing.T) {
	reg := NewRegistry(Options{IDPrefix: "inf-"})
	defer reg.Close()
	j, err := reg.Create(wire.Operation{Operation: wire.OpInfer}, func(j *Job) error {
		<-j.Context().Done()
		j.Emit(wire.NewEnd(wire.StopCancelled, 1, 0, wire.Timings{}))
		return nil
	}, CreateOptions{QuietCancel: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(j.ID(), "inf-") {
		t.Fatalf("id %q", j.ID())
	}
	reg.Cancel(j.ID())
	waitFinished(t, j)
	if !errors.Is(context.Cause(j.Context()), ErrCancelled) {
		t.Fatalf("cause %v", context.Cause(j.Context()))
	}
	evs, _, _, done, _ := j.read(0, nil, 10)
	if !done || len(evs) != 1 || evs[0].typ != wire.TypeEnd {
		t.Fatalf("events %q done %v", evs, done)
	}
}
