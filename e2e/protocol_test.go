package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/wire"
)

// The job protocol of the real queen: an unknown operation is a 400 and no
// job; a quiet job's stream carries keep-alive pings; DELETE ends the job
// with a cancelled error event, then [DONE].
func TestJobProtocolThroughQueen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.daemon("queen-rbee")
	e.waitAnswers(e.queenURL)
	ctx := t.Context()
	c := &jobs.Client{BaseURL: e.queenURL}

	var re *wire.Error
	if _, err := c.Submit(ctx, wire.Operation{Operation: "explode"}); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("unknown operation: %v", err)
	}
	resp, err := http.Post(e.queenURL+"/v1/jobs", "application/json", strings.NewReader(`{"operation":`))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed body: %s", resp.Status)
	}

	// A worker that keeps saying it is loading makes an infer job wait for
	// it, quietly.
	hbCtx, stopHB := context.WithCancel(ctx)
	defer stopHB()
	go func() {
		hb, _ := json.Marshal(wire.Heartbeat{WorkerID: "worker-slow", HiveID: "localhost", Model: "slow",
			URL: "http://127.0.0.1:9", State: wire.StateLoading, Slots: 1})
		for hbCtx.Err() == nil {
			if resp, err := http.Post(e.queenURL+"/v1/workers/heartbeat", "application/json", bytes.NewReader(hb)); err == nil {
				resp.Body.Close()
			}
			select {
			case <-hbCtx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	jc, err := c.Submit(ctx, wire.Operation{Operation: wire.OpInfer, Model: "slow", InferenceRequest: wire.InferenceRequest{Prompt: "x"}})
	must(t, err)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.queenURL+jc.SSEURL, nil)
	resp, err = http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(within time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(within):
			t.Fatalf("stream silent for %s", within)
			return "", false
		}
	}
	for {
		l, ok := next(15 * time.Second)
		if !ok {
			t.Fatal("stream ended before any ping")
		}
		if strings.HasPrefix(l, `data: {"type":"error"`) {
			t.Fatalf("job failed while it should wait: %s", l)
		}
		if l == ": ping" {
			break
		}
	}

	must(t, c.Cancel(ctx, jc.JobID))
	var sawCancelled bool
	for {
		l, ok := next(5 * time.Second)
		if !ok {
			t.Fatal("stream ended without [DONE]")
		}
		if data, isData := strings.CutPrefix(l, "data: "); isData {
			if data == "[DONE]" {
				break
			}
			var ev wire.Event
			must(t, json.Unmarshal([]byte(data), &ev))
			if ev.Type == wire.TypeError {
				if ev.Code != wire.CodeCancelled {
					t.Fatalf("error event %+v, want code cancelled", ev)
				}
				sawCancelled = true
			}
		}
	}
	if !sawCancelled {
		t.Fatal("no cancelled error event before [DONE]")
	}
}

// A hive is never a way to a worker: it answers infer with a 400 that says
// where inference goes.
func TestHiveRefusesInfer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.daemon("rbee-hive", "--port", strings.TrimPrefix(e.hiveURL, "http://127.0.0.1:"), "--hive-id", "localhost")
	e.waitAnswers(e.hiveURL)
	c := &jobs.Client{BaseURL: e.hiveURL}
	_, err := c.Submit(t.Context(), wire.Operation{Operation: wire.OpInfer, Model: "alpha", InferenceRequest: wire.InferenceRequest{Prompt: "abc"}})
	var re *wire.Error
	if !errors.As(err, &re) || re.Status != http.StatusBadRequest || !strings.Contains(re.Message, "queen") {
		t.Fatalf("infer on the hive: %v", err)
	}
	if _, err := c.Submit(t.Context(), wire.Operation{Operation: wire.OpStatus}); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("status on the hive: %v", err)
	}
	resp, err := http.Get(e.hiveURL + "/v1/capabilities")
	must(t, err)
	defer resp.Body.Close()
	var caps wire.HiveCapabilities
	if err := json.NewDecoder(resp.Body).Decode(&caps); err != nil || resp.StatusCode != http.StatusOK || caps.HiveID != "localhost" || caps.CPUCores < 1 {
		t.Fatalf("capabilities: %s %+v %v", resp.Status, caps, err)
	}
}
