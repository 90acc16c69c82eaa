package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rbee/rbee/internal/apikeys"
	"github.com/rbee/rbee/internal/cli/term"
)

// The key commands edit keys.json in this machine's config directory
// directly: the queen re-reads it on change, so no queen needs to run.

var keyView = term.View{
	Cols:  []string{"id", "name", "key", "created_at"},
	Keys:  []string{"id", "name", "key", "created_at"},
	Empty: "no API keys: the OpenAI API serves only this machine (rbee key create makes one)",
}

// keyInfo is what the key commands print of a key: never its hash.
type keyInfo struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hint      string    `json:"key"` // the key's first characters, then "…"
	CreatedAt time.Time `json:"created_at"`
}

func infoOf(k apikeys.Key) keyInfo {
	return keyInfo{ID: k.ID, Name: k.Name, Hint: k.Hint + "…", CreatedAt: k.CreatedAt}
}

func keyStore() (*apikeys.Store, error) {
	p, err := apikeys.Path()
	if err != nil {
		return nil, err
	}
	return apikeys.Open(p), nil
}

func (a *App) printKey(g *globals, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if g.json {
		return term.PrintJSON(a.Stdout, data)
	}
	return term.PrintData(a.Stdout, data, keyView)
}

var keyCreateCommand = &command{
	name:     "key create",
	synopsis: "[--name NAME]",
	summary:  "make an API key for the OpenAI-compatible API",
	help: `Prints the new key on stdout; it is shown only this once (rbee keeps its
SHA-256 in keys.json beside config.toml). As soon as one key exists, every
request to the queen's OpenAI API (/v1/chat/completions, /v1/completions,
/v1/models) needs one as "Authorization: Bearer KEY", and the queen may listen
beyond loopback (queen_host in config.toml). Keys grant the OpenAI API only:
the job protocol (every other rbee command) stays reserved to this machine,
or to queen_token. A running queen sees new and revoked keys at once.`,
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		name := fs.String("name", "", "a `NAME` that says where the key is used, e.g. laptop")
		return func(ctx context.Context, args []string) error {
			if err := apikeys.CheckName(*name); err != nil {
				return usagef("%v", err)
			}
			store, err := keyStore()
			if err != nil {
				return err
			}
			secret, k, err := store.Create(*name)
			if err != nil {
				return err
			}
			if g.json {
				return a.printKey(g, struct {
					keyInfo
					Secret string `json:"secret"`
				}{infoOf(k), secret})
			}
			fmt.Fprintln(a.Stdout, secret)
			fmt.Fprintf(a.Stderr, "Created API key %s%s. It is shown only now: store it where its client can read it.\n"+
				"Send it as \"Authorization: Bearer KEY\"; OpenAI clients take it as their API key, with the base URL http://<queen>:<port>/v1.\n",
				k.ID, named(k.Name))
			return nil
		}
	},
}

var keyListCommand = &command{
	name:     "key list",
	summary:  "list the API keys (never the keys themselves)",
	synopsis: "",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error {
			store, err := keyStore()
			if err != nil {
				return err
			}
			keys, err := store.List()
			if err != nil {
				return err
			}
			out := make([]keyInfo, len(keys))
			for i, k := range keys {
				out[i] = infoOf(k)
			}
			return a.printKey(g, out)
		}
	},
}

var keyRevokeCommand = &command{
	name:     "key revoke",
	synopsis: "ID",
	summary:  "revoke an API key: the queen refuses it from the next request on",
	minArgs:  1, maxArgs: 1,
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error {
			if err := apikeys.CheckID(args[0]); err != nil {
				return usagef("%v", err)
			}
			store, err := keyStore()
			if err != nil {
				return err
			}
			k, err := store.Revoke(args[0])
			if errors.Is(err, apikeys.ErrNotFound) {
				return fmt.Errorf("%v; see rbee key list", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Stderr, "Revoked API key %s%s\n", k.ID, named(k.Name))
			return a.printKey(g, infoOf(k))
		}
	},
}

func named(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (%s)", name)
}
