package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// What a web page of another site can make a browser send, without a
// preflight, to the daemons on the user's machine: a text/plain POST (or a
// navigation) to stop them, run jobs or start inference. Every one is
// refused with 403 before it runs, and everything still works afterwards
// for clients that are not browsers.
func TestCrossSiteRequestsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustRbee("queen", "start")
	t.Cleanup(func() { e.rbee("queen", "stop") })
	e.mustRbee("hive", "start")
	e.mustRbee("worker", "spawn", "-m", e.alphabet)
	ws := e.workers()
	if len(ws) != 1 || ws[0].URL == "" {
		t.Fatalf("workers: %+v", ws)
	}
	worker := ws[0].URL
	models := e.mustRbee("model", "list").stdout
	// A model no catalog has yet, for a cross-site download to import.
	beta := filepath.Join(e.home, "beta.gguf")
	data, err := os.ReadFile(e.alphabet)
	must(t, err)
	must(t, os.WriteFile(beta, data, 0o600))

	browser := []map[string]string{
		{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
		{"Origin": "null"},                  // a sandboxed frame or a file: page
		{"Sec-Fetch-Site": "cross-site"},    // a form or navigation without Origin
		{"Origin": "http://localhost:3000"}, // another program on this machine
	}
	for _, target := range []struct{ url, body string }{
		{e.queenURL + "/v1/shutdown", ""},
		{e.queenURL + "/v1/jobs", `{"operation":"model_download","model":"` + beta + `","hive_id":"localhost"}`},
		{e.queenURL + "/v1/jobs", `{"operation":"hive_stop","alias":"localhost"}`},
		{e.queenURL + "/v1/chat/completions", `{"model":"alpha","messages":[{"role":"user","content":"abc"}]}`},
		{e.queenURL + "/v1/workers/heartbeat", `{}`},
		{e.hiveURL + "/v1/shutdown", ""},
		{e.hiveURL + "/v1/jobs", `{"operation":"worker_stop","worker_id":"` + ws[0].WorkerID + `"}`},
		{worker + "/v1/inference", `{"prompt":"abc"}`},
	} {
		for _, hdr := range browser {
			req, err := http.NewRequest(http.MethodPost, target.url, strings.NewReader(target.body))
			must(t, err)
			req.Header.Set("Content-Type", "text/plain")
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %v: %v", target.url, hdr, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "cross-origin") {
				t.Errorf("%s %v: %d %s", target.url, hdr, resp.StatusCode, body)
			}
		}
	}

	// Nothing ran: the daemons are up, the worker and the catalog as they
	// were, and clients that are not browsers are served.
	if r := e.mustRbee("infer", "-m", "alpha", "uvw"); r.stdout != "xyz\n" {
		t.Errorf("infer after the cross-site requests: %s", r)
	}
	if ws := e.workers(); len(ws) != 1 || ws[0].URL != worker {
		t.Errorf("workers after the cross-site requests: %+v", ws)
	}
	if got := e.mustRbee("model", "list").stdout; got != models {
		t.Errorf("the catalog changed:\n%s\nwas\n%s", got, models)
	}
}
