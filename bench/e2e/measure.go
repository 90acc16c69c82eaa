package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/supervise"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/wire"
	"github.com/rbee/rbee/internal/workerclient"
)

// world is an isolated rbee installation: a temporary HOME whose config
// puts the queen and the local hive on free ports.
type world struct {
	bin      string
	home     string
	env      []string
	queenURL string
}

func newWorld(bin string) (*world, error) {
	home, err := os.MkdirTemp("", "rbee-bench-")
	if err != nil {
		return nil, err
	}
	// Held for the benchmark's life, until the queen and the hive bind them.
	qp, err := testkit.ReservePort()
	if err != nil {
		return nil, err
	}
	hp, err := testkit.ReservePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(home, "config", "rbee")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg, "config.toml"), fmt.Appendf(nil, "queen_port = %d\n", qp.Port), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg, "hives.conf"), fmt.Appendf(nil, "Host localhost\n  HivePort %d\n", hp.Port), 0o600); err != nil {
		return nil, err
	}
	w := &world{bin: bin, home: home, queenURL: fmt.Sprintf("http://127.0.0.1:%d", qp)}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "HOME" && !strings.HasPrefix(k, "XDG_") && !strings.HasPrefix(k, "RBEE_") {
			w.env = append(w.env, kv)
		}
	}
	w.env = append(w.env, "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	return w, nil
}

func (w *world) close() { _ = os.RemoveAll(w.home) }

// startQueen starts the queen as our child (it dies with us) and waits for
// its /health.
func (w *world) startQueen() (*supervise.Process, error) {
	f, err := os.Create(filepath.Join(w.home, "queen.log"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := supervise.Start(supervise.Spec{Path: filepath.Join(w.bin, "queen-rbee"), Env: w.env, Stdout: f, Stderr: f})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get(w.queenURL + "/health"); err == nil {
			resp.Body.Close()
			return p, nil
		}
		if time.Now().After(deadline) || p.Exited() {
			p.Stop()
			return nil, fmt.Errorf("queen-rbee did not answer at %s; see %s", w.queenURL, f.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitQueenKnows waits until the queen's registry has a ready worker for
// the model: heartbeats, not the worker's own readiness, are what it routes by.
func (w *world) waitQueenKnows(model string) error {
	c := &jobs.Client{BaseURL: w.queenURL}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ev, err := c.Run(context.Background(), wire.Operation{Operation: wire.OpStatus}, nil)
		if err != nil {
			return err
		}
		var st wire.Status
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			return err
		}
		for _, wk := range st.Workers {
			if wk.Model == model && wk.State == wire.StateReady {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the queen did not see a ready %s worker", model)
}

// sample is one request: time to first token and decode speed.
type sample struct {
	ttft      time.Duration
	decodeTPS float64
}

// tokenClock records when text arrives.
type tokenClock struct {
	start, first, last time.Time
	n                  int // tokens (or, for a process, reads) seen
}

func (c *tokenClock) tick() {
	now := time.Now()
	if c.n == 0 {
		c.first = now
	}
	c.last = now
	c.n++
}

func (c *tokenClock) sample(tokens int) (sample, error) {
	if c.n == 0 {
		return sample{}, errNoText
	}
	s := sample{ttft: c.first.Sub(c.start)}
	if d := c.last.Sub(c.first); tokens > 1 && d > 0 {
		s.decodeTPS = float64(tokens-1) / d.Seconds()
	}
	return s, nil
}

var summaryRE = regexp.MustCompile(`\[rbee\] (\d+) tokens`)

// measureCLI runs rbee and times the bytes of its stdout; the token count
// comes from its summary line on stderr.
func (w *world) measureCLI(args ...string) (sample, error) {
	cmd := exec.Command(filepath.Join(w.bin, "rbee"), args...)
	cmd.Env, cmd.Dir = w.env, w.home
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return sample{}, err
	}
	clock := tokenClock{start: time.Now()}
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	buf := make([]byte, 4096)
	for {
		n, err := out.Read(buf)
		if n > 0 && strings.TrimSpace(string(buf[:n])) != "" {
			clock.tick()
		}
		if err != nil {
			break
		}
	}
	if err := cmd.Wait(); err != nil {
		return sample{}, fmt.Errorf("rbee %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	m := summaryRE.FindStringSubmatch(stderr.String())
	if m == nil {
		return sample{}, fmt.Errorf("rbee printed no summary: %s", stderr.String())
	}
	tokens, _ := strconv.Atoi(m[1])
	return clock.sample(tokens)
}

func (w *world) measureQueen(ctx context.Context, op wire.Operation) (sample, error) {
	c := &jobs.Client{BaseURL: w.queenURL}
	clock := tokenClock{start: time.Now()}
	_, err := c.Run(ctx, op, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			clock.tick()
		}
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	return clock.sample(clock.n)
}

func measureWorker(ctx context.Context, wc *workerclient.Client, req wire.InferenceRequest) (sample, error) {
	clock := tokenClock{start: time.Now()}
	_, err := wc.Generate(ctx, req, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			clock.tick()
		}
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	return clock.sample(clock.n)
}

func (w *world) timeStatus(n int) ([]time.Duration, error) {
	var times []time.Duration
	for range n {
		cmd := exec.Command(filepath.Join(w.bin, "rbee"), "status")
		var stderr strings.Builder
		cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = w.env, w.home, io.Discard, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("rbee status: %v: %s", err, stderr.String())
		}
		times = append(times, time.Since(start))
	}
	return times, nil
}

func median(s []sample) sample {
	t := make([]time.Duration, len(s))
	d := make([]float64, len(s))
	for i, x := range s {
		t[i], d[i] = x.ttft, x.decodeTPS
	}
	slices.Sort(d)
	return sample{ttft: medianDur(t), decodeTPS: d[len(d)/2]}
}

func medianDur(t []time.Duration) time.Duration {
	t = slices.Clone(t)
	slices.Sort(t)
	return t[len(t)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
