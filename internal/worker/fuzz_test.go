package worker

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rbee/rbee/internal/engine/fake"
)

// Whatever a client posts, the worker answers 201 or 4xx, never a panic or
// a 5xx.
func FuzzInferenceRequest(f *testing.F) {
	for _, s := range []string{
		`{"prompt":"abc","max_tokens":3,"temperature":0}`,
		`{"messages":[{"role":"user","content":"hi"}],"stop":["x"],"seed":1}`,
		`{"prompt":"a","top_k":-1}`, `{"prompt":"a","timeout_ms":0}`, `[`, `null`, `{"prompt":1e400}`,
	} {
		f.Add([]byte(s))
	}
	w := start(f, &fake.Model{CtxSize: 64}, func(c *Config) { c.QueueCap = 1 << 16; c.UnwatchedTimeout = 1 })
	h := w.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/inference", bytes.NewReader(body)))
		if rec.Code != http.StatusCreated && (rec.Code < 400 || rec.Code >= 500) {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
	})
}
