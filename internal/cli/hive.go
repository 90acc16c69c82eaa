package cli

import (
	"context"
	"flag"

	"github.com/rbee/rbee/internal/wire"
)

var hiveView = view{
	cols:  []string{"alias", "host", "hive_port", "state", "url"},
	keys:  []string{"alias", "hive_id", "host", "hive_port", "state", "url"},
	empty: "no hives",
}

func hiveCommand(sub, op, summary string) *command {
	return &command{
		name:     "hive " + sub,
		synopsis: "[-a ALIAS]",
		summary:  summary,
		help: `ALIAS names a host of hives.conf (in the rbee config directory); localhost,
this machine, is always there.`,
		short: map[string]string{"a": "alias"},
		setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
			alias := fs.String("alias", defaultHive, "the hive's `ALIAS` in hives.conf")
			fs.StringVar(alias, "a", defaultHive, "")
			return func(ctx context.Context, args []string) error {
				if err := checkAlias(*alias); err != nil {
					return err
				}
				return a.runAndPrint(ctx, g, wire.Operation{Operation: op, Alias: *alias}, hiveView)
			}
		},
	}
}

var hiveListCommand = &command{
	name:    "hive list",
	summary: "list the hives of hives.conf and their state",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error {
			return a.runAndPrint(ctx, g, wire.Operation{Operation: wire.OpHiveList}, hiveView)
		}
	},
}
