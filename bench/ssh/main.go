// Command ssh measures hives on other machines: `rbee hive install` and
// `rbee hive start` to a test host over SSH, the time from a worker_spawn on
// that host to the worker's first heartbeat at the queen, and the time to
// first token through the queen to a worker there against one on this
// machine. The host is a network namespace with its own sshd
// (internal/testhosts), so it needs root; run it after `make build`:
//
//	go run ./bench/ssh [-bin bin] [-runs 3] [-ttft 30]
//
// The queen runs in this process (so that the first heartbeat is seen the
// moment it arrives); the CLI, hives and workers are the programs in -bin.
// The link to the host is a veth pair: the network adds microseconds, not
// a LAN's fraction of a millisecond, so the remote numbers are rbee's own
// cost of another machine (SSH, tokens, non-loopback sockets).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/queen"
	"github.com/rbee/rbee/internal/sshx"
	"github.com/rbee/rbee/internal/testhosts"
	"github.com/rbee/rbee/internal/testkit"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

func main() {
	bin := flag.String("bin", "bin", "directory of the four programs (make build)")
	runs := flag.Int("runs", 3, "runs of install, start and spawn")
	ttft := flag.Int("ttft", 30, "inference requests per worker for time to first token")
	flag.Parse()
	if err := run(*bin, *runs, *ttft); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ssh:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin    string
	home   string
	env    []string // of the rbee CLI
	lab    *testhosts.Lab
	q      *queen.Server
	client *jobs.Client
}

func run(bin string, runs, ttftRuns int) error {
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	for _, p := range []string{"rbee", "rbee-hive", "llm-worker-rbee"} {
		if _, err := os.Stat(filepath.Join(bin, p)); err != nil {
			return fmt.Errorf("%v (run make build first)", err)
		}
	}
	if err := testhosts.Available(); err != nil {
		return err
	}
	ctx := context.Background()
	lab, err := testhosts.Start(ctx, 1)
	if err != nil {
		return err
	}
	defer lab.Close()
	b, err := newBench(bin, lab)
	if err != nil {
		return err
	}
	defer b.close()
	h := lab.Hosts[0]
	model := filepath.Join(lab.Dir, "alpha.gguf")
	if err := testmodel.WriteAlphabet(model); err != nil {
		return err
	}
	if err := os.Chmod(model, 0o644); err != nil {
		return err
	}

	var install, start, firstBeat, ready []time.Duration
	for i := range runs {
		d, err := b.cli("hive", "install", "-a", h.Name)
		if err != nil {
			return err
		}
		install = append(install, d)
		if i > 0 {
			if _, err := b.cli("hive", "stop", "-a", h.Name); err != nil {
				return err
			}
		}
		if d, err = b.cli("hive", "start", "-a", h.Name); err != nil {
			return err
		}
		start = append(start, d)
	}
	for range runs {
		beat, done, err := b.spawnToHeartbeat(ctx, h.Name, model)
		if err != nil {
			return err
		}
		firstBeat, ready = append(firstBeat, beat), append(ready, done)
	}

	// One worker here and one there, on the same model, asked in turns.
	if _, err := b.job(ctx, wire.Operation{Operation: wire.OpHiveStart, Alias: "localhost"}); err != nil {
		return err
	}
	for _, hive := range []string{"localhost", h.Name} {
		if _, err := b.job(ctx, wire.Operation{Operation: wire.OpWorkerSpawn, HiveID: hive, Model: model}); err != nil {
			return err
		}
	}
	ttft := map[string][]time.Duration{}
	for range ttftRuns {
		for _, hive := range []string{"localhost", h.Name} {
			d, err := b.firstToken(ctx, hive)
			if err != nil {
				return err
			}
			ttft[hive] = append(ttft[hive], d)
		}
	}
	_, _ = b.job(ctx, wire.Operation{Operation: wire.OpHiveStop, Alias: h.Name})

	fmt.Printf("Hives over SSH to a test host (network namespace, OpenSSH %s), queen in-process; %d CPUs\n\n", sshdVersion(), runtimeCPUs())
	fmt.Println("| measurement | runs | median | p90 | min | max |")
	fmt.Println("|---|---|---|---|---|---|")
	row := func(name string, ds []time.Duration) {
		s := slices.Clone(ds)
		slices.Sort(s)
		fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", name, len(s), ms(s[len(s)/2]), ms(s[len(s)*9/10]), ms(s[0]), ms(s[len(s)-1]))
	}
	row(fmt.Sprintf("`rbee hive install` (%s + %s, SFTP, SHA-256 check)", size(bin, "rbee-hive"), size(bin, "llm-worker-rbee")), install)
	row("`rbee hive start` (to answering /health)", start)
	row("worker_spawn on the host → first heartbeat at the queen", firstBeat)
	row("worker_spawn on the host → spawn job done (model loaded)", ready)
	row("time to first token through the queen, worker on this machine", ttft["localhost"])
	row("time to first token through the queen, worker on the host", ttft[h.Name])
	return nil
}

func newBench(bin string, lab *testhosts.Lab) (*bench, error) {
	home, err := os.MkdirTemp("", "rbee-bench-ssh-")
	if err != nil {
		return nil, err
	}
	b := &bench{bin: bin, home: home, lab: lab}
	h := lab.Hosts[0]
	tokb := make([]byte, 16)
	_, _ = rand.Read(tokb)
	token := hex.EncodeToString(tokb)
	// The local hive and its workers inherit this process's environment.
	for k, v := range map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, "config"), "XDG_DATA_HOME": filepath.Join(home, "data")} {
		os.Setenv(k, v)
	}
	known := filepath.Join(home, "known_hosts")
	if err := os.WriteFile(known, []byte(h.KnownHostsLine()), 0o600); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	hivePort, err := testkit.ReservePort() // held until the queen's local hive binds it
	if err != nil {
		return nil, err
	}
	hives := []config.Hive{
		{Alias: "localhost", HostName: "127.0.0.1", HivePort: hivePort.Port},
		{Alias: h.Name, HostName: h.Addr, User: h.User, Port: 22, IdentityFile: lab.ClientKey, HivePort: config.DefaultHivePort},
	}
	b.q = queen.New(queen.Options{
		URL: url, LocalURL: url, Token: token, BindHost: "0.0.0.0", Port: port,
		Hives:        func() ([]config.Hive, error) { return hives, nil },
		HiveBinary:   filepath.Join(bin, "rbee-hive"),
		HiveLog:      filepath.Join(home, "rbee-hive-localhost.log"),
		HiveTokenDir: filepath.Join(home, "hive-tokens"),
		SSH:          sshx.Options{KnownHosts: []string{known}, DefaultKeys: []string{}, AgentSocket: "-"},
		Logger:       slog.New(slog.DiscardHandler),
	})
	srv := &http.Server{Handler: b.q.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.client = &jobs.Client{BaseURL: url, Token: token}

	cfg := filepath.Join(home, "config", "rbee")
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg, "config.toml"), fmt.Appendf(nil, "queen_port = %d\nqueen_token = %q\n", port, token), 0o600); err != nil {
		return nil, err
	}
	b.env = append(os.Environ(), "RBEE_QUEEN_URL="+url)
	return b, nil
}

func (b *bench) close() {
	_ = b.q.Close()
	_ = os.RemoveAll(b.home)
}

// cli runs the rbee command and returns how long it took.
func (b *bench) cli(args ...string) (time.Duration, error) {
	cmd := exec.Command(filepath.Join(b.bin, "rbee"), args...)
	cmd.Env = b.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("rbee %v: %v\n%s", args, err, out)
	}
	return d, nil
}

// job runs an operation on the queen to its end.
func (b *bench) job(ctx context.Context, op wire.Operation) (wire.Event, error) {
	jc, err := b.client.Submit(ctx, op)
	if err != nil {
		return wire.Event{}, err
	}
	return b.client.Stream(ctx, jc.JobID, func(wire.Event) error { return nil })
}

// spawnToHeartbeat spawns a worker on hive and returns how long until its
// first heartbeat reached the queen, and until the spawn job ended; then it
// stops the worker.
func (b *bench) spawnToHeartbeat(ctx context.Context, hive, model string) (beat, done time.Duration, err error) {
	known := map[string]bool{}
	for _, w := range b.q.Workers().List() {
		known[w.WorkerID] = true
	}
	start := time.Now()
	beatc := make(chan time.Duration, 1)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			changed := b.q.Workers().Changed()
			for _, w := range b.q.Workers().List() {
				if w.HiveID == hive && !known[w.WorkerID] {
					beatc <- time.Since(start)
					return
				}
			}
			select {
			case <-changed:
			case <-wctx.Done():
				return
			}
		}
	}()
	ev, err := b.job(ctx, wire.Operation{Operation: wire.OpWorkerSpawn, HiveID: hive, Model: model})
	done = time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	select {
	case beat = <-beatc:
	case <-time.After(30 * time.Second):
		return 0, 0, errors.New("no heartbeat from the new worker within 30 s")
	}
	var w struct {
		WorkerID string `json:"worker_id"`
	}
	if err := json.Unmarshal(ev.Data, &w); err != nil {
		return 0, 0, err
	}
	_, err = b.job(ctx, wire.Operation{Operation: wire.OpWorkerStop, HiveID: hive, WorkerID: w.WorkerID})
	return beat, done, err
}

// firstToken runs one short greedy inference on hive's worker through the
// queen and returns the time from the submit to the first token event.
func (b *bench) firstToken(ctx context.Context, hive string) (time.Duration, error) {
	maxTok, temp := 8, 0.0
	start := time.Now()
	jc, err := b.client.Submit(ctx, wire.Operation{Operation: wire.OpInfer, Model: "alpha", HiveID: hive, InferenceRequest: wire.InferenceRequest{Prompt: "abc", MaxTokens: &maxTok, Temperature: &temp}})
	if err != nil {
		return 0, err
	}
	var first time.Duration
	_, err = b.client.Stream(ctx, jc.JobID, func(e wire.Event) error {
		if e.Type == wire.TypeToken && first == 0 {
			first = time.Since(start)
		}
		return nil
	})
	if err == nil && first == 0 {
		err = errors.New("no token")
	}
	return first, err
}
