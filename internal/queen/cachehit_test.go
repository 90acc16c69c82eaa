package queen

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/worker"
)

// Real worker servers (on the fake engine, whose prompt cache reports what
// the llama engine's would) behind the queen: the turns of a conversation
// land on one worker, though the policy prefers the other, and the client
// sees its cache hit in usage.
func TestConversationHitsWorkerCache(t *testing.T) {
	q := newQueen(t, nil, nil)
	ws := map[string]*worker.Server{}
	for _, id := range []string{"w1", "w2"} {
		var w *worker.Server
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { w.Handler().ServeHTTP(rw, r) }))
		w = worker.New(worker.Config{
			WorkerID: id, HiveID: "localhost", ModelName: "m", URL: srv.URL, QueenURL: q.srv.URL,
			Token: q.credential(t, "localhost", id), Loopback: true, Slots: 2, QueueCap: 4,
			Load: func(func(float32)) (engine.Model, error) { return &fake.Model{Slots: 2}, nil },
		})
		ws[id] = w
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			<-done
			srv.Close()
		})
	}
	testkit.WaitFor(t, "both workers registered", func() bool {
		n := 0
		for _, w := range q.workers.List() {
			if w.State == wire.StateReady {
				n++
			}
		}
		return n == 2
	})
	served := func() map[string]int64 {
		out := map[string]int64{}
		for id, w := range ws {
			if c := w.Ready().Cache; c != nil {
				out[id] = c.PromptTokens
			}
		}
		return out
	}
	conv := []wire.ChatMessage{{Role: "system", Content: "you answer in letters"}, {Role: "user", Content: "abc"}}
	home := ""
	// favour makes the policy prefer the worker that does not hold the
	// conversation: the one heard from last.
	favour := func(home string) {
		for _, w := range q.workers.List() {
			if w.WorkerID != home {
				q.beat(t, w.Heartbeat)
			}
		}
	}
	for turn := 1; turn <= 4; turn++ {
		favour(home)
		before := served()
		body, _ := json.Marshal(map[string]any{"model": "m", "messages": conv, "max_tokens": 4, "temperature": 0})
		code, out := q.postAPI(t, "/v1/chat/completions", string(body))
		if code != http.StatusOK {
			t.Fatalf("turn %d: %d %s", turn, code, out)
		}
		var resp struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.Choices) == 0 {
			t.Fatalf("turn %d: %v %s", turn, err, out)
		}
		after := served()
		var ran []string
		for id := range ws {
			if after[id] != before[id] {
				ran = append(ran, id)
			}
		}
		if len(ran) != 1 || (home != "" && ran[0] != home) {
			t.Fatalf("turn %d ran on %v; the conversation is on %q", turn, ran, home)
		}
		home = ran[0]
		if cached := resp.Usage.PromptTokensDetails.CachedTokens; turn > 1 && (cached == 0 || cached >= resp.Usage.PromptTokens) {
			t.Fatalf("turn %d: %d of %d prompt tokens cached", turn, cached, resp.Usage.PromptTokens)
		}
		conv = append(conv, wire.ChatMessage{Role: "assistant", Content: resp.Choices[0].Message.Content},
			wire.ChatMessage{Role: "user", Content: fmt.Sprint("more ", turn)})
	}
}
