package worker

import (
	"testing"

	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/wire"
)

// The prompt cache's work reaches the client: the end event counts the
// cached prompt tokens, and /v1/ready and heartbeats carry the cache's
// size and hit rate.
func TestPromptCacheReported(t *testing.T) {
	w := start(t, &fake.Model{}, nil)
	_, events := w.stream(t, w.submit(t, `{"messages":[{"role":"user","content":"abc"}],"max_tokens":3,"temperature":0}`))
	if end := last(events); end.TokensCached != 0 {
		t.Fatalf("first request: %+v", end)
	}
	_, events = w.stream(t, w.submit(t, `{"messages":[{"role":"user","content":"abc"},{"role":"assistant","content":";<="},{"role":"user","content":"d"}],"max_tokens":3,"temperature":0}`))
	end := last(events)
	// "user: abc\nassistant:" and its BOS: 21 tokens, all in the cache.
	if end.TokensCached != 21 || end.TokensIn <= end.TokensCached {
		t.Fatalf("second request: %+v", end)
	}
	r := w.Ready()
	if r.Cache == nil || r.Cache.Sequences == 0 || r.Cache.CachedTokens != 21 || r.Cache.HitRate() <= 0 {
		t.Fatalf("ready: %+v", r.Cache)
	}

	off := start(t, &fake.Model{NoCache: true}, nil)
	_, events = off.stream(t, off.submit(t, `{"prompt":"abc","max_tokens":2}`))
	_, events = off.stream(t, off.submit(t, `{"prompt":"abc","max_tokens":2}`))
	if end := last(events); end.Type != wire.TypeEnd || end.TokensCached != 0 || off.Ready().Cache != nil {
		t.Fatalf("with the cache off: %+v, ready %+v", end, off.Ready().Cache)
	}
}
