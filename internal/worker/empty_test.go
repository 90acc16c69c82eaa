package worker

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/wire"
)

// null, {} and an empty prompt used to be accepted with 201 and generate to
// the end of the context. A request needs a prompt or messages: 400.
func TestEmptyRequestsRefused(t *testing.T) {
	w := start(t, &fake.Model{CtxSize: 64}, nil)
	for _, body := range []string{`null`, `{}`, `{"prompt":""}`, `{"messages":[]}`, `{"prompt":"","max_tokens":5}`} {
		resp, b := w.post(t, body)
		var eb wire.ErrorBody
		if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &eb) != nil ||
			eb.Error.Code != wire.CodeBadRequest || !strings.Contains(eb.Error.Message, "prompt is empty") {
			t.Errorf("%s: %s %s", body, resp.Status, b)
		}
	}
	if text, _ := w.stream(t, w.submit(t, `{"prompt":"x"}`)); text != "yz" {
		t.Fatalf("a prompt after them: %q", text)
	}
}
