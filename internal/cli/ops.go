package cli

import (
	"context"

	"github.com/rbee/rbee/internal/wire"
)

func (a *App) reporter(quiet bool) *reporter {
	return &reporter{w: a.Stderr, tty: a.StderrTTY, quiet: quiet}
}

// runAndPrint runs op on the queen, shows its narration and progress on
// stderr, and prints its result on stdout as v says (or as JSON).
func (a *App) runAndPrint(ctx context.Context, g *globals, op wire.Operation, v view) error {
	qc, err := connect(g)
	if err != nil {
		return err
	}
	rep := a.reporter(false)
	ev, err := qc.run(ctx, op, rep.event)
	rep.endProgress()
	if err != nil {
		return err
	}
	if g.json {
		return printJSON(a.Stdout, ev.Data)
	}
	return printData(a.Stdout, ev.Data, v)
}
