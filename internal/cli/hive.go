package cli

import (
	"context"
	"flag"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/wire"
)

var hiveView = term.View{
	Cols:  []string{"alias", "host", "hive_port", "state", "url"},
	Keys:  []string{"alias", "hive_id", "host", "hive_port", "state", "url"},
	Empty: "no hives",
}

func hiveCommand(sub, op, summary string) *command {
	return &command{
		name:     "hive " + sub,
		synopsis: "[-a ALIAS]",
		summary:  summary,
		help: `ALIAS names a host of hives.conf (in the rbee config directory), else of
~/.ssh/config; localhost, this machine, is always there.` + sshHelp(op),
		short: map[string]string{"a": "alias"},
		setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
			alias := fs.String("alias", defaultHive, "the hive's `ALIAS` in hives.conf")
			fs.StringVar(alias, "a", defaultHive, "")
			var acceptNew *bool
			if overSSH(op) {
				acceptNew = fs.Bool("accept-new-host-key", false, "trust the host's SSH key if known_hosts has none for it yet (a changed key is refused regardless)")
			}
			return func(ctx context.Context, args []string) error {
				if err := asUsage(wire.CheckHiveID(*alias)); err != nil {
					return err
				}
				o := wire.Operation{Operation: op, Alias: *alias}
				if acceptNew != nil {
					o.AcceptNewHostKey = *acceptNew
				}
				return a.runAndPrint(ctx, g, o, hiveView)
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

// overSSH reports whether op logs in to a remote hive's host.
func overSSH(op string) bool {
	switch op {
	case wire.OpHiveInstall, wire.OpHiveUninstall, wire.OpHiveStart, wire.OpHiveStop:
		return true
	}
	return false
}

func sshHelp(op string) string {
	if !overSSH(op) {
		return ""
	}
	return `

For a host other than localhost the queen logs in over SSH with the keys ssh
would use (IdentityFile, ~/.ssh/id_ed25519, id_ecdsa, id_rsa, ssh-agent). The
host's key must be in ~/.ssh/known_hosts: add it with ssh-keyscan after
checking its fingerprint, or pass --accept-new-host-key once.`
}
