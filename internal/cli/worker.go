package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/device"

	"github.com/rbee/rbee/internal/wire"
)

var workerView = term.View{
	Cols:  []string{"worker_id", "hive_id", "model", "state", "device", "pid", "url"},
	Keys:  []string{"worker_id", "hive_id", "model", "state", "url", "pid", "device", "started_at"},
	Empty: "no workers",
}

var workerSpawnCommand = &command{
	name:     "worker spawn",
	synopsis: "-m MODEL [--hive ALIAS] [--device cpu|cuda:N|metal:N]",
	summary:  "start a worker that serves a model",
	help: `The worker loads MODEL (a catalog id, a path to a .gguf file, or
hf:owner/repo[:file.gguf]) on the hive, reports to the queen, and serves
inference until it is stopped. The command returns once the worker is ready.`,
	short: map[string]string{"m": "model"},
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		model := fs.String("model", "", "the `MODEL` to load (required)")
		fs.StringVar(model, "m", "", "")
		hive := fs.String("hive", defaultHive, "the `ALIAS` of the hive to run it on")
		device := fs.String("device", "", "the `DEVICE` to run on: cpu, cuda:N or metal:N (default: the hive's choice)")
		return func(ctx context.Context, args []string) error {
			if *model == "" {
				return usagef("-m MODEL is required")
			}
			if err := asUsage(wire.CheckHiveID(*hive)); err != nil {
				return err
			}
			if err := checkDevice(*device); err != nil {
				return err
			}
			m, err := a.modelArg(*model, *hive)
			if err != nil {
				return err
			}
			op := wire.Operation{Operation: wire.OpWorkerSpawn, HiveID: *hive, Model: m, Device: *device}
			return a.runAndPrint(ctx, g, op, workerView)
		}
	},
}

var workerListCommand = &command{
	name:     "worker list",
	synopsis: "[--hive ALIAS]",
	summary:  "list workers (of every hive unless --hive)",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		hive := fs.String("hive", "", "only the workers of the hive with this `ALIAS`")
		return func(ctx context.Context, args []string) error {
			if *hive != "" {
				if err := asUsage(wire.CheckHiveID(*hive)); err != nil {
					return err
				}
			}
			return a.runAndPrint(ctx, g, wire.Operation{Operation: wire.OpWorkerList, HiveID: *hive}, workerView)
		}
	},
}

var (
	workerGetCommand  = workerIDCommand("get", wire.OpWorkerGet, "show one worker")
	workerStopCommand = workerIDCommand("stop", wire.OpWorkerStop, "stop a worker")
)

func workerIDCommand(sub, op, summary string) *command {
	return &command{
		name:     "worker " + sub,
		synopsis: "ID [--hive ALIAS]",
		summary:  summary,
		minArgs:  1, maxArgs: 1,
		setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
			hive := fs.String("hive", "", "the `ALIAS` of the worker's hive (default: where the queen last saw it, else localhost)")
			return func(ctx context.Context, args []string) error {
				if *hive != "" {
					if err := asUsage(wire.CheckHiveID(*hive)); err != nil {
						return err
					}
				}
				if err := asUsage(wire.CheckWorkerID(args[0])); err != nil {
					return err
				}
				return a.runAndPrint(ctx, g, wire.Operation{Operation: op, HiveID: *hive, WorkerID: args[0]}, workerView)
			}
		},
	}
}

func checkDevice(d string) error {
	if d == "" {
		return nil
	}
	if _, err := device.Parse(d); err != nil {
		return usagef("%v", err)
	}
	return nil
}

func decodeWorker(ev wire.Event) (wire.WorkerInfo, error) {
	var w wire.WorkerInfo
	if err := json.Unmarshal(ev.Data, &w); err != nil || w.WorkerID == "" {
		return w, fmt.Errorf("worker_spawn answered a result without a worker: %.200s", ev.Data)
	}
	return w, nil
}
