// Command queen-rbee is the orchestrator daemon: the keeper's job server,
// the worker registry, the scheduler that sends inference straight to
// workers, and the keeper of the local hive.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/queen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "queen-rbee: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("queen-rbee", flag.ContinueOnError)
	var (
		host          = fs.String("host", cfg.QueenHost, "address to listen on; a non-loopback one needs an API key (rbee key create) or queen_token in config.toml")
		port          = fs.Int("port", cfg.QueenPort, "port to listen on (0: any free port; the address is printed on stdout)")
		workerTimeout = fs.Duration("worker-timeout", 8*time.Second, "heartbeat silence after which a worker is gone")
		cacheRouting  = fs.Bool("cache-routing", true, "send a conversation's next turn to the worker holding its prompt cache, while it has a free slot")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: queen-rbee [--host ADDR] [--port N] [--worker-timeout D] [--cache-routing=false]\n\n"+
			"Defaults come from config.toml (queen_host, queen_port, queen_token) in $XDG_CONFIG_HOME/rbee.\n"+
			"When queen_token is set, every endpoint but /health requires it as a bearer token.\n"+
			"Once an API key exists (rbee key create, stored in keys.json beside config.toml), every\n"+
			"request of the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models) needs one.\n"+
			"keep_alive (default \"5m\"; \"0\": never) stops workers idle that long; max_queue (default 128)\n"+
			"bounds the requests per model that wait for a free slot.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	case *port < 0 || *port > 65535:
		return fmt.Errorf("--port must be from 0 to 65535, got %d", *port)
	case *workerTimeout <= 0:
		return fmt.Errorf("--worker-timeout must be positive, got %s", *workerTimeout)
	}
	keysPath, err := apikeys.Path()
	if err != nil {
		return err
	}
	keys := apikeys.NewChecker(apikeys.Open(keysPath))
	nkeys, err := keys.Count()
	if err != nil {
		return fmt.Errorf("the API key store: %w", err)
	}
	if httpapi.CheckBind(*host, cfg.QueenToken != "" || nkeys > 0) != nil {
		return fmt.Errorf("refusing to listen on %s with no API key and no queen_token: create a key with `rbee key create`, set queen_token in config.toml, or bind 127.0.0.1", *host)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))

	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	bound := ln.Addr().(*net.TCPAddr).Port
	url, localURL := urls(*host, bound)
	// Tests and the keeper read this line to learn the port of --port 0.
	fmt.Printf("listening %s\n", url)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	q := queen.New(queen.Options{
		URL:           url,
		LocalURL:      localURL,
		Token:         cfg.QueenToken,
		Loopback:      httpapi.IsLoopback(*host),
		APIKeys:       keys,
		WorkerTimeout: *workerTimeout,
		Shutdown:      stop,
		// Remote hives are told where to find the queen from these.
		BindHost:     *host,
		Port:         bound,
		AdvertiseURL: cfg.QueenAdvertiseURL,
		MaxQueue:     cfg.MaxQueueOrDefault(),
		KeepAlive:    keepAlive(cfg),

		NoCacheRouting: !*cacheRouting,
	})
	slog.Info("queen-rbee listening", "url", url, "worker_timeout", *workerTimeout, "keep_alive", cfg.KeepAliveOrDefault(), "max_queue", cfg.MaxQueueOrDefault(), "token", cfg.QueenToken != "", "api_keys", nkeys, "openai_base_url", url+"/v1")
	err = q.Serve(ctx, ln)
	slog.Info("queen-rbee stopped")
	return err
}

// urls returns where clients reach the queen, and where processes on this
// machine do: a wildcard bind is reachable on loopback.
func urls(host string, port int) (public, local string) {
	p := strconv.Itoa(port)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		return "http://" + net.JoinHostPort("127.0.0.1", p), "http://" + net.JoinHostPort("127.0.0.1", p)
	}
	public = "http://" + net.JoinHostPort(host, p)
	if httpapi.IsLoopback(host) {
		return public, "http://" + net.JoinHostPort("127.0.0.1", p)
	}
	return public, public
}

// keepAlive is keep_alive of config.toml as queen.Options takes it: "0"
// (keep workers) is negative there, where zero means the default.
func keepAlive(cfg config.Config) time.Duration {
	if d := cfg.KeepAliveOrDefault(); d > 0 {
		return d
	}
	return -1
}
