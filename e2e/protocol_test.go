package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
)

// The job protocol of the real queen: an unknown operation is a 400 and no
// job; a quiet job's stream carries keep-alive pings; DELETE ends the job
// with a cancelled error event, then [DONE].
func TestJobProtocolThroughQueen(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startQueen()
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
	// it, quietly. The queen has taken its first heartbeat once it answered
	// it; the next ones keep the worker from going silent.
	// It proves its heartbeats with the credential a worker of the local
	// hive derives from hive-tokens/localhost, which the queen made.
	hb := wire.Heartbeat{WorkerID: "worker-slow", HiveID: "localhost", Model: "slow",
		URL: "http://127.0.0.1:9", State: wire.StateLoading, Slots: 1}
	beats := &jobs.Client{BaseURL: e.queenURL, Token: e.workerCredential("localhost", hb.WorkerID)}
	must(t, beats.Heartbeat(ctx, hb))
	hbCtx, stopHB := context.WithCancel(ctx)
	beating := make(chan struct{})
	defer func() {
		stopHB()
		<-beating
	}()
	go func() {
		defer close(beating)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-tick.C:
				_ = beats.Heartbeat(hbCtx, hb)
			}
		}
	}()
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
			select {
			case lines <- sc.Text():
			case <-ctx.Done(): // the test has read what it wanted
				return
			}
		}
	}()
	next := func() (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(testkit.Patience):
			t.Fatalf("stream silent for %s", testkit.Patience)
			return "", false
		}
	}
	for {
		l, ok := next()
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
		l, ok := next()
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
// where inference goes. Started by hand, it requires the token of its id
// from this machine's config directory, which it made.
func TestHiveRefusesInfer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hiveURL := e.daemon("rbee-hive", "--hive-id", "localhost").URL
	c := &jobs.Client{BaseURL: hiveURL}
	if _, err := c.Submit(t.Context(), wire.Operation{Operation: wire.OpStatus}); httpStatus(err) != http.StatusUnauthorized {
		t.Fatalf("a hive started by hand took a request without its token: %v", err)
	}
	c.Token = e.hiveToken("localhost")
	_, err := c.Submit(t.Context(), wire.Operation{Operation: wire.OpInfer, Model: "alpha", InferenceRequest: wire.InferenceRequest{Prompt: "abc"}})
	var re *wire.Error
	if !errors.As(err, &re) || re.Status != http.StatusBadRequest || !strings.Contains(re.Message, "queen") {
		t.Fatalf("infer on the hive: %v", err)
	}
	if _, err := c.Submit(t.Context(), wire.Operation{Operation: wire.OpStatus}); !errors.As(err, &re) || re.Status != http.StatusBadRequest {
		t.Fatalf("status on the hive: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, hiveURL+"/v1/capabilities", nil)
	httpapi.SetBearer(req, c.Token)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	var caps wire.HiveCapabilities
	if err := json.NewDecoder(resp.Body).Decode(&caps); err != nil || resp.StatusCode != http.StatusOK || caps.HiveID != "localhost" || caps.CPUCores < 1 {
		t.Fatalf("capabilities: %s %+v %v", resp.Status, caps, err)
	}
}

// workerCredential is what worker workerID of hive hiveID on this test's
// machine holds: derived from the hive's token in the test's config
// directory, as a hive or a worker started by hand derives it. The worker
// requires it on its API and proves its heartbeats with it.
func (e *env) workerCredential(hiveID, workerID string) string {
	e.t.Helper()
	return httpapi.WorkerToken(e.hiveToken(hiveID), workerID)
}

// hiveToken is hive hiveID's token in the test's config directory.
func (e *env) hiveToken(hiveID string) string {
	e.t.Helper()
	tok, err := config.HiveTokens{Dir: filepath.Join(e.home, "config", "rbee", "hive-tokens")}.Get(hiveID)
	must(e.t, err)
	if tok == "" {
		e.t.Fatalf("hive %s has no token", hiveID)
	}
	return tok
}

func httpStatus(err error) int {
	if re, ok := wire.AsError(err); ok {
		return re.Status
	}
	return 0
}
