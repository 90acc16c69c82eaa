package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/modelref"
	"github.com/rbee/rbee/internal/wire"
)

const defaultHive = "localhost"

var modelView = term.View{
	Cols:  []string{"id", "hive_id", "size_bytes", "architecture", "parameters", "quantization", "context_length", "source"},
	Keys:  []string{"id", "hive_id", "source", "path", "size_bytes", "architecture", "parameters", "quantization", "context_length", "has_chat_template", "added_at", "last_used_at"},
	Empty: "no models",
}

func modelCommand(sub, op, summary string) *command {
	return &command{
		name:     "model " + sub,
		synopsis: "MODEL [--hive ALIAS]",
		summary:  summary,
		help: `MODEL is a catalog id, a path to a .gguf file, or a Hugging Face reference
hf:owner/repo[:file.gguf]. A relative path is taken from the current directory.
The hive downloads hf: models from HF_ENDPOINT (default https://huggingface.co)
with HF_TOKEN, both from the hive's environment; without a file name it picks
a GGUF file by quantization: Q4_K_M, then Q8_0, Q5_K_M, Q6_K, ...`,
		minArgs: 1, maxArgs: 1,
		setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
			hive := fs.String("hive", defaultHive, "the `ALIAS` of the hive whose catalog to use")
			force := false
			if op == wire.OpModelDelete {
				fs.BoolVar(&force, "force", false, "stop the workers that use the model first")
			}
			return func(ctx context.Context, args []string) error {
				if err := asUsage(wire.CheckHiveID(*hive)); err != nil {
					return err
				}
				model, err := a.modelArg(args[0], *hive)
				if err != nil {
					return err
				}
				return a.runAndPrint(ctx, g, wire.Operation{Operation: op, HiveID: *hive, Model: model, Force: force}, modelView)
			}
		},
	}
}

var modelListCommand = &command{
	name:     "model list",
	synopsis: "[--hive ALIAS]",
	summary:  "list the models of a hive's catalog",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		hive := fs.String("hive", "", "list only the catalog of the hive with this `ALIAS` (default: every hive)")
		return func(ctx context.Context, args []string) error {
			if *hive != "" {
				if err := asUsage(wire.CheckHiveID(*hive)); err != nil {
					return err
				}
			}
			return a.runAndPrint(ctx, g, wire.Operation{Operation: wire.OpModelList, HiveID: *hive}, modelView)
		}
	},
}

// modelArg checks a MODEL argument and makes a path absolute, since the
// daemons that read it run in other directories. For the local hive a path
// must name an existing regular file: saying so here beats a worker failing
// later.
func (a *App) modelArg(s, hive string) (string, error) {
	ref, err := modelref.Parse(s)
	if err != nil {
		return "", usagef("%v", err)
	}
	if ref.Kind != modelref.KindPath {
		return s, nil
	}
	p := ref.Path
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("expanding %s: %w", s, err)
		}
		p = filepath.Join(home, rest)
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(a.Dir, p)
	}
	if hive == defaultHive || hive == "" {
		// The reader every daemon uses: a named pipe or device is refused
		// here without being opened, and nothing blocks.
		f, _, err := gguf.Open(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("model file %s does not exist", p)
		case err != nil:
			return "", err
		}
		f.Close()
	}
	return p, nil
}

// modelID is the catalog id the daemons match a model reference by.
func modelID(s string) string {
	if ref, err := modelref.Parse(s); err == nil {
		return ref.ID
	}
	return s
}
