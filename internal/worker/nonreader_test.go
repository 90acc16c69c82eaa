package worker

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// serve runs a worker of m the way llm-worker-rbee does (Serve: its
// connections have httpapi's small send buffer) and returns its client.
func serve(t *testing.T, m engine.Model, mutate func(*Config)) (*Server, *workerclient.Client) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{WorkerID: "w1", ModelName: "fake", Load: func(func(float32)) (engine.Model, error) { return m, nil }}
	if mutate != nil {
		mutate(&cfg)
	}
	s := New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	c := &workerclient.Client{BaseURL: "http://" + ln.Addr().String()}
	if err := c.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, c
}

// endless is the fake model, but writing "a" forever: a long generation.
type endless struct{ *fake.Model }

func (e endless) NewSequence(s engine.Sampling) (engine.Sequence, error) {
	sq, err := e.Model.NewSequence(s)
	if err != nil {
		return nil, err
	}
	return endlessSeq{sq}, nil
}

type endlessSeq struct{ engine.Sequence }

func (endlessSeq) Sample() engine.Token { return engine.Token(testmodel.CharToken('a')) }

// A client that streams a long generation and never reads holds its slot
// only until what it can absorb is full and a write stalls for
// WriteTimeout: then its stream is cut and the generation cancelled, long
// before its end (without the small send buffer, loopback's kernel buffers
// take tens of thousands of token events first). The worker's other slot
// serves another client meanwhile.
func TestNonReaderFreesItsSlot(t *testing.T) {
	const maxTokens = 60000
	m := &fake.Model{CtxSize: 1 << 16, Slots: 2, Delay: 200 * time.Microsecond}
	s, c := serve(t, endless{m}, func(cfg *Config) { cfg.Slots = 2; cfg.WriteTimeout = 100 * time.Millisecond })

	jc, err := c.Submit(t.Context(), wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(maxTokens)})
	if err != nil {
		t.Fatal(err)
	}
	testkit.DialNonReader(t, c.BaseURL[len("http://"):], testkit.GetRequest(c.BaseURL[len("http://"):], jc.SSEURL))

	end, err := c.Generate(t.Context(), wire.InferenceRequest{Prompt: "a", MaxTokens: ptr(5)}, nil)
	if err != nil || end.TokensOut != 5 {
		t.Fatalf("the other slot: %+v %v", end, err)
	}

	j := s.job(jc.JobID)
	testkit.WaitFor(t, "the non-reader's generation to end", finished(j))
	testkit.WaitFor(t, "active 0", func() bool { return s.Ready().Active == 0 })
	if cause := context.Cause(j.Context()); cause == nil || j.Context().Err() == nil {
		t.Fatalf("the non-reader's job was not cancelled (cause %v)", cause)
	}
	if d := m.Decodes(); d >= maxTokens/3 {
		t.Fatalf("%d tokens decoded for a client that never read; it was not cut off", d)
	}
}
