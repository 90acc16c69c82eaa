package cli

import (
	"context"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/wire"
)

func (a *App) reporter(quiet bool) *term.Reporter {
	return &term.Reporter{W: a.Stderr, TTY: a.StderrTTY, Quiet: quiet}
}

// runAndPrint runs op on the queen, shows its narration and progress on
// stderr, and prints its result on stdout as v says (or as JSON).
func (a *App) runAndPrint(ctx context.Context, g *globals, op wire.Operation, v term.View) error {
	qc, err := connect(g)
	if err != nil {
		return err
	}
	rep := a.reporter(false)
	ev, err := qc.run(ctx, op, rep.Event)
	rep.EndProgress()
	if err != nil {
		return err
	}
	if g.json {
		return term.PrintJSON(a.Stdout, ev.Data)
	}
	return term.PrintData(a.Stdout, ev.Data, v)
}
