package jobs

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func newRecorder(body string, h http.Handler) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/jobs", strings.NewReader(body)))
	return rec
}

// FuzzCreateJob feeds arbitrary bodies to POST /v1/jobs: the handler never
// panics, answers 201 or 4xx with an error body, and creates a job only for
// a 201.
func FuzzCreateJob(f *testing.F) {
	for _, s := range []string{
		`{"operation":"status"}`,
		`{"operation":"infer","prompt":"hi","max_tokens":5,"temperature":0.5,"stop":["x"]}`,
		`{"operation":"worker_spawn","hive_id":"h","model":"m","device":"cuda:0"}`,
		`{"operation":"infer","max_tokens":1e400}`,
		`{"operation":"status"}{}`,
		`[]`, `null`, `"status"`, `{"operation":null}`, `{"seed":-1}`, `{`, "\xff",
		`{"operation":"status","operation":"infer"}`,
		strings.Repeat("[", 20000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reg := NewRegistry(Options{})
		defer reg.Close()
		mux := http.NewServeMux()
		reg.Mount(mux, func(op wire.Operation) (RunFunc, error) {
			switch op.Operation {
			case wire.OpStatus, wire.OpInfer, wire.OpWorkerSpawn:
				return func(j *Job) error { return nil }, nil
			}
			return nil, wire.Errorf(wire.CodeBadRequest, "unknown operation %q", op.Operation)
		})
		rec := newRecorder(string(body), mux)
		switch {
		case rec.Code == http.StatusCreated:
			var jc wire.JobCreated
			if err := json.Unmarshal(rec.Body.Bytes(), &jc); err != nil || reg.Len() != 1 {
				t.Fatalf("201 with body %q, %d jobs", rec.Body, reg.Len())
			}
		case rec.Code >= 400 && rec.Code < 500:
			var eb wire.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || reg.Len() != 0 {
				t.Fatalf("%d with body %q, %d jobs", rec.Code, rec.Body, reg.Len())
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
