// Package cli is rbee, the command a person types (the keeper). It talks to
// the queen only through the job protocol (jobs.Client), starts a queen for
// the length of one `rbee infer` when none is running, and starts or stops a
// detached queen for `rbee queen start|stop`.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rbee/rbee/internal/cli/term"
)

// Exit statuses. A mistake in the command line exits 2 and starts its
// output with the line "rbee COMMAND: reason" ("rbee: reason" before a
// command is known); any other failure is the one line "rbee: reason" and
// exits 1. README.md ("Using rbee") promises exactly this.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// App is one run of the rbee command with its surroundings, so that tests
// can run it in-process.
type App struct {
	Stdout io.Writer
	Stderr io.Writer
	// Dir is the working directory: relative model paths are made absolute
	// against it before they are sent, since the daemons have their own.
	Dir string
	// BinDir is where queen-rbee is looked for before $PATH: the directory
	// of the rbee executable, so ./bin/rbee starts ./bin/queen-rbee.
	BinDir string
	// StderrTTY makes progress one redrawn line instead of a line per step.
	StderrTTY bool

	// startQueen starts the queen that `rbee infer` runs on when none
	// answers; tests replace it with an in-process fake.
	startQueen func(ctx context.Context, addr queenAddr, log io.Writer) (queenProcess, error)
}

// Main runs rbee with the process's arguments and surroundings and returns
// the exit status. SIGINT, SIGTERM and SIGHUP cancel the command, which then
// stops what it started; a second signal gives up on a clean stop.
func Main() int {
	a := &App{Stdout: os.Stdout, Stderr: os.Stderr}
	a.Dir, _ = os.Getwd()
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			a.BinDir = filepath.Dir(exe)
		}
	}
	a.StderrTTY = isTerminal(os.Stderr)

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		cancel(&interrupted{sig: s})
		s = <-sigs
		// Children still get their parent-death signal when we go.
		os.Exit(signalExit(s))
	}()
	return a.Run(ctx, os.Args[1:])
}

// interrupted is the cancel cause of a signal.
type interrupted struct{ sig os.Signal }

func (e *interrupted) Error() string { return "interrupted by " + e.sig.String() }

func signalExit(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return exitFailure
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// globals are the flags every command takes.
type globals struct {
	queenURL string
	json     bool
}

// command is one leaf of the command tree.
type command struct {
	name     string // "infer", "queen start"
	synopsis string // what follows the name in the usage line
	summary  string // one line for the command list
	help     string // paragraphs for --help
	short    map[string]string
	minArgs  int
	maxArgs  int  // -1: any number
	noJSON   bool // no --json: infer prints text, not a result
	setup    func(a *App, fs *flag.FlagSet, g *globals) runFunc
}

type runFunc func(ctx context.Context, args []string) error

// commands is the whole command tree, in the order the usage lists it.
var commands = []*command{
	inferCommand,
	statusCommand,
	queenStartCommand, queenStopCommand, queenStatusCommand,
	hiveCommand("install", "hive_install", "install rbee-hive on a host"),
	hiveCommand("uninstall", "hive_uninstall", "remove rbee-hive from a host"),
	hiveCommand("start", "hive_start", "start a hive"),
	hiveCommand("stop", "hive_stop", "stop a hive and its workers"),
	hiveCommand("status", "hive_status", "say whether a hive answers"),
	hiveCommand("get", "hive_get", "show a hive's configuration and state"),
	hiveCommand("refresh", "hive_refresh_capabilities", "ask a hive for its devices again"),
	hiveListCommand,
	workerSpawnCommand, workerListCommand, workerGetCommand, workerStopCommand,
	modelCommand("download", "model_download", "fetch a model into a hive's catalog"),
	modelCommand("get", "model_get", "show a model of a hive's catalog"),
	modelCommand("delete", "model_delete", "remove a model from a hive's catalog"),
	modelListCommand,
	keyCreateCommand, keyListCommand, keyRevokeCommand,
}

var groups = map[string]string{
	"queen":  "the queen-rbee daemon on this machine",
	"hive":   "hives: one rbee-hive per machine",
	"worker": "workers: one llm-worker-rbee per loaded model",
	"model":  "models in a hive's catalog",
	"key":    "API keys of the queen's OpenAI-compatible API",
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// Run runs one command line and returns the exit status.
func (a *App) Run(ctx context.Context, args []string) int {
	g := &globals{}
	// Global flags may also come before the command.
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a0, v, hasV := strings.Cut(strings.TrimLeft(args[0], "-"), "="); {
		case a0 == "h" || a0 == "help":
			a.usage(a.Stdout)
			return exitOK
		case a0 == "queen-url" && hasV:
			g.queenURL, args = v, args[1:]
		case a0 == "queen-url" && len(args) > 1:
			g.queenURL, args = args[1], args[2:]
		case a0 == "queen-url":
			fmt.Fprintln(a.Stderr, "rbee: flag --queen-url needs a value")
			return exitUsage
		default:
			fmt.Fprintf(a.Stderr, "rbee: unknown flag %s\n", args[0])
			a.usage(a.Stderr)
			return exitUsage
		}
	}
	if len(args) == 0 {
		fmt.Fprintln(a.Stderr, "rbee: no command given")
		a.usage(a.Stderr)
		return exitUsage
	}
	if args[0] == "help" {
		return a.help(args[1:])
	}
	var c *command
	rest := args[1:]
	if _, isGroup := groups[args[0]]; isGroup {
		if len(args) < 2 || args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
			if len(args) > 1 {
				a.groupUsage(a.Stdout, args[0])
				return exitOK
			}
			fmt.Fprintf(a.Stderr, "rbee %s: no subcommand given\n", args[0])
			a.groupUsage(a.Stderr, args[0])
			return exitUsage
		}
		c, rest = lookup(args[0]+" "+args[1]), args[2:]
	} else {
		c = lookup(args[0])
	}
	if c == nil {
		if _, isGroup := groups[args[0]]; isGroup {
			fmt.Fprintf(a.Stderr, "rbee %s: unknown subcommand %q\n", args[0], args[1])
			a.groupUsage(a.Stderr, args[0])
		} else {
			fmt.Fprintf(a.Stderr, "rbee: unknown command %q\n", args[0])
			a.usage(a.Stderr)
		}
		return exitUsage
	}
	return a.runCommand(ctx, c, g, rest)
}

func (a *App) runCommand(ctx context.Context, c *command, g *globals, args []string) int {
	fs := flag.NewFlagSet("rbee "+c.name, flag.ContinueOnError)
	fs.StringVar(&g.queenURL, "queen-url", g.queenURL, "the queen's `URL` (default: $RBEE_QUEEN_URL, else queen_host and queen_port of config.toml)")
	if !c.noJSON {
		fs.BoolVar(&g.json, "json", false, "print the result as JSON, for scripts")
	}
	run := c.setup(a, fs, g)
	pos, err := parseArgs(fs, args)
	if err == nil && (len(pos) < c.minArgs || c.maxArgs >= 0 && len(pos) > c.maxArgs) {
		err = usagef("wrong number of arguments")
	}
	if errors.Is(err, flag.ErrHelp) {
		a.commandUsage(a.Stdout, c, fs, true)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(a.Stderr, "rbee %s: %v\n", c.name, err)
		a.commandUsage(a.Stderr, c, fs, false)
		return exitUsage
	}
	return a.exit(ctx, c, run(ctx, pos))
}

// exit prints err as the one line a failure gets and picks the status.
func (a *App) exit(ctx context.Context, c *command, err error) int {
	if err == nil {
		return exitOK
	}
	var sig *interrupted
	if errors.As(context.Cause(ctx), &sig) {
		fmt.Fprintf(a.Stderr, "rbee: %s\n", sig.Error())
		return signalExit(sig.sig)
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(a.Stderr, "rbee %s: %s (see rbee %s --help)\n", c.name, term.OneLine(err.Error()), c.name)
		return exitUsage
	}
	fmt.Fprintf(a.Stderr, "rbee: %s\n", describe(err))
	return exitFailure
}

func (a *App) help(args []string) int {
	switch {
	case len(args) == 0:
		a.usage(a.Stdout)
		return exitOK
	case len(args) == 1 && groups[args[0]] != "":
		a.groupUsage(a.Stdout, args[0])
		return exitOK
	}
	c := lookup(strings.Join(args, " "))
	if c == nil {
		fmt.Fprintf(a.Stderr, "rbee help: unknown command %q\n", strings.Join(args, " "))
		return exitUsage
	}
	fs := flag.NewFlagSet("rbee "+c.name, flag.ContinueOnError)
	g := &globals{}
	fs.StringVar(&g.queenURL, "queen-url", "", "the queen's `URL` (default: $RBEE_QUEEN_URL, else queen_host and queen_port of config.toml)")
	if !c.noJSON {
		fs.BoolVar(&g.json, "json", false, "print the result as JSON, for scripts")
	}
	c.setup(a, fs, g)
	a.commandUsage(a.Stdout, c, fs, true)
	return exitOK
}

func (a *App) usage(w io.Writer) {
	fmt.Fprint(w, `usage: rbee COMMAND [flags] [args]

rbee runs LLM inference on the machines of your network: one queen-rbee
orchestrates, one rbee-hive per machine manages workers, one
llm-worker-rbee per loaded model generates text.

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  rbee %-15s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Flags may come before or after the arguments; -- ends them. Every command
takes --queen-url URL (default: $RBEE_QUEEN_URL, else config.toml).
Run 'rbee COMMAND --help' for a command's flags.
`)
}

func (a *App) groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "usage: rbee %s SUBCOMMAND [flags] [args]\n\n%s.\n\nSubcommands:\n", group, upperFirst(groups[group]))
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(w, "  rbee %-15s %s\n", c.name, c.summary)
		}
	}
}

func (a *App) commandUsage(w io.Writer, c *command, fs *flag.FlagSet, long bool) {
	fmt.Fprintf(w, "usage: rbee %s %s\n", c.name, c.synopsis)
	if long {
		fmt.Fprintf(w, "\n%s\n", upperFirst(c.summary)+".")
		if c.help != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
		}
	}
	fmt.Fprintln(w, "\nFlags:")
	printFlags(w, fs, c.short)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
