// Command rbee-hive manages one machine for the queen: it spawns and stops
// llm-worker-rbee processes and keeps the machine's model catalog.
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

	"github.com/rbee/rbee/internal/config"
	"github.com/rbee/rbee/internal/hive"
	"github.com/rbee/rbee/internal/httpapi"
	"github.com/rbee/rbee/internal/wire"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "rbee-hive: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("rbee-hive", flag.ContinueOnError)
	var (
		host       = fs.String("host", "127.0.0.1", "address to listen on (anything but loopback needs RBEE_HIVE_TOKEN)")
		port       = fs.Int("port", config.DefaultHivePort, "port to listen on (0: any free port; the address is printed on stdout)")
		hiveID     = fs.String("hive-id", "localhost", "this hive's id, reported by its workers")
		queenURL   = fs.String("queen-url", "", "queen that workers send heartbeats to (empty: none)")
		workerBin  = fs.String("worker-binary", "", "llm-worker-rbee to run (default: next to rbee-hive, else on $PATH)")
		workerHost = fs.String("worker-host", "127.0.0.1", "address workers listen on and give the queen")
		verbose    = fs.Bool("verbose", false, "log debug messages too")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: rbee-hive [--host ADDR] [--port N] [--hive-id ID] [--queen-url URL] [--worker-binary PATH] [--worker-host ADDR]\n\n")
		fmt.Fprintf(fs.Output(), "Environment: RBEE_HIVE_TOKEN (at least 16 characters, no blanks) is required as a bearer token on every\n")
		fmt.Fprintf(fs.Output(), "endpoint but /health. Unset, the hive uses hive-tokens/HIVE-ID of $XDG_CONFIG_HOME/rbee (made if missing),\n")
		fmt.Fprintf(fs.Output(), "the file the queen on this machine uses. Each worker gets RBEE_WORKER_TOKEN, a credential derived from it,\n")
		fmt.Fprintf(fs.Output(), "which it requires and proves its heartbeats with.\n")
		fmt.Fprintf(fs.Output(), "Models are catalogued under $XDG_DATA_HOME/rbee/models, worker logs go to $XDG_DATA_HOME/rbee/logs\n(default ~/.local/share/rbee).\n\n")
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
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	case *port < 0 || *port > 65535:
		return fmt.Errorf("port %d is out of range", *port)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	// A signal from here on stops the hive cleanly, its workers with it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	token, err := hiveToken(*hiveID)
	if err != nil {
		return err
	}
	h, err := hive.New(hive.Config{
		HiveID:       *hiveID,
		QueenURL:     *queenURL,
		WorkerBinary: *workerBin,
		WorkerHost:   *workerHost,
		Token:        token,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	// A starter that asked for --port 0 reads the port from this line.
	fmt.Printf("listening http://%s\n", ln.Addr())
	return h.Serve(ctx, ln)
}

// hiveToken is the hive's token: RBEE_HIVE_TOKEN, as the queen starts a
// hive; else, for a hive started by hand, the one of hive-tokens/ID in this
// machine's config directory, made if missing, which the queen here reads
// too. Every hive has one: its workers' credentials derive from it.
func hiveToken(id string) (string, error) {
	if tok := os.Getenv("RBEE_HIVE_TOKEN"); tok != "" {
		if err := httpapi.CheckToken(tok); err != nil {
			return "", fmt.Errorf("RBEE_HIVE_TOKEN: %w", err)
		}
		return tok, nil
	}
	if err := wire.CheckHiveID(id); err != nil {
		return "", fmt.Errorf("--hive-id: %w", err)
	}
	tok, _, err := config.HiveTokens{}.Ensure(id)
	if err != nil {
		return "", fmt.Errorf("the token of hive %s: %w (or set RBEE_HIVE_TOKEN)", id, err)
	}
	return tok, nil
}
