package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/wire"
)

// spawnSettle bounds how long an infer retries after a spawn while the
// queen has not heard of the new worker yet.
const spawnSettle = 5 * time.Second

var inferCommand = &command{
	name:     "infer",
	synopsis: "-m MODEL [--hive ALIAS] [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--seed S] [--stop S]... [--timeout D] PROMPT",
	summary:  "generate text and print it as it comes",
	help: `Only the generated text goes to stdout; what rbee and the daemons are doing
goes to stderr. MODEL is a catalog id, a path to a .gguf file, or
hf:owner/repo[:file.gguf]. Several PROMPT arguments are joined with spaces.

With no queen running, rbee starts one (with the local hive and a worker for
MODEL) and stops them all when the text is done. With a queen running and no
worker for MODEL, rbee starts a worker on the hive (--hive, default
localhost) and leaves it running for the next request.`,
	short:   map[string]string{"m": "model", "q": "quiet"},
	minArgs: 1, maxArgs: -1,
	noJSON: true,
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		var o inferOpts
		fs.StringVar(&o.model, "model", "", "the `MODEL` to use (required)")
		fs.StringVar(&o.model, "m", "", "")
		fs.StringVar(&o.hive, "hive", "", "use a worker of the hive with this `ALIAS` (default: any; localhost when one must be started)")
		fs.StringVar(&o.workerID, "worker", "", "use the worker with this `ID`")
		fs.Var(&o.maxTokens, "max-tokens", "generate at most `N` tokens")
		fs.Var(&o.temperature, "temperature", "sampling temperature `T`; 0 is greedy")
		fs.Var(&o.topP, "top-p", "nucleus sampling: keep the tokens of probability mass `P`")
		fs.Var(&o.topK, "top-k", "keep the `K` most likely tokens; 0 is off")
		fs.Var(&o.minP, "min-p", "drop tokens less likely than `P` times the most likely one")
		fs.Var(&o.repeatPenalty, "repeat-penalty", "penalty `R` for repeating recent tokens; 1 is off")
		fs.Var(&o.seed, "seed", "random seed `S` of the sampler")
		fs.Var(&o.stop, "stop", "stop at the text `S` (repeatable)")
		fs.DurationVar(&o.timeout, "timeout", 0, "fail if the request cannot start within `D` (e.g. 30s); 0 waits as long as the queen does")
		fs.BoolVar(&o.quiet, "quiet", false, "print only the text: no narration, progress or summary on stderr")
		fs.BoolVar(&o.quiet, "q", false, "")
		return func(ctx context.Context, args []string) error {
			o.prompt = strings.Join(args, " ")
			return a.infer(ctx, g, o)
		}
	},
}

type inferOpts struct {
	model, hive, workerID string
	prompt                string
	maxTokens, topK       optInt
	temperature, topP     optFloat
	minP, repeatPenalty   optFloat
	seed                  optUint32
	stop                  stringList
	timeout               time.Duration
	quiet                 bool
}

func (a *App) infer(ctx context.Context, g *globals, o inferOpts) error {
	if o.model == "" {
		return usagef("-m MODEL is required")
	}
	if o.prompt == "" {
		return usagef("PROMPT is empty")
	}
	if o.hive != "" {
		if err := asUsage(wire.CheckHiveID(o.hive)); err != nil {
			return err
		}
	}
	if o.workerID != "" {
		if err := asUsage(wire.CheckWorkerID(o.workerID)); err != nil {
			return err
		}
	}
	spawnHive := o.hive
	if spawnHive == "" {
		spawnHive = defaultHive
	}
	model, err := a.modelArg(o.model, spawnHive)
	if err != nil {
		return err
	}
	op := wire.Operation{Operation: wire.OpInfer, Model: model, HiveID: o.hive, WorkerID: o.workerID, InferenceRequest: wire.InferenceRequest{Prompt: o.prompt, MaxTokens: o.maxTokens.v, Temperature: o.temperature.v, TopP: o.topP.v, TopK: o.topK.v, MinP: o.minP.v, RepetitionPenalty: o.repeatPenalty.v, Seed: o.seed.v, Stop: o.stop}}
	if o.timeout < 0 {
		return usagef("--timeout must not be negative")
	}
	if o.timeout > 0 {
		ms := int(max(o.timeout.Milliseconds(), 1))
		op.TimeoutMs = &ms
	}
	if err := op.InferenceRequest.Validate(); err != nil {
		return usagef("%v", err)
	}
	qc, err := connect(g)
	if err != nil {
		return err
	}
	s := &inferSession{a: a, qc: qc, op: op, hive: spawnHive, rep: a.reporter(o.quiet), out: &textOut{w: a.Stdout}}
	err = qc.health(ctx)
	var nq *noQueenError
	switch {
	case errors.As(err, &nq):
		err = s.withOwnQueen(ctx)
	case err == nil:
		err = s.onRunningQueen(ctx)
	}
	s.out.finish()
	return err
}

// inferSession is one `rbee infer`.
type inferSession struct {
	a    *App
	qc   *queenConn
	op   wire.Operation
	hive string // where to start a hive and worker if there is none
	rep  *term.Reporter
	out  *textOut
}

// onRunningQueen runs the request on a queen that was running before; if
// no worker serves the model, it starts one and leaves it running.
func (s *inferSession) onRunningQueen(ctx context.Context) error {
	err := s.generate(ctx)
	if !wire.IsCode(err, wire.CodeNoWorker) || s.op.WorkerID != "" {
		return err
	}
	s.rep.Say("No worker serves %s yet; starting one on hive %s", modelID(s.op.Model), s.hive)
	w, err := s.startWorker(ctx)
	if err != nil {
		return err
	}
	if err := s.generateSettled(ctx); err != nil {
		return err
	}
	s.rep.Say("Worker %s stays running on hive %s for the next request (`rbee worker stop %s --hive %s` stops it)",
		w.WorkerID, w.HiveID, w.WorkerID, w.HiveID)
	return nil
}

// withOwnQueen starts a queen, the hive and a worker, runs the request and
// stops the queen again, which stops the hive it started and the hive's
// workers.
func (s *inferSession) withOwnQueen(ctx context.Context) (err error) {
	s.rep.Say("No queen at %s; starting one for this request", s.qc.url)
	sq, err := s.a.launchQueen(ctx, s.qc)
	if err != nil {
		return err
	}
	var w wire.WorkerInfo
	defer func() {
		s.rep.Say("Stopping queen-rbee (started for this request) with its hive and workers")
		if w.WorkerID != "" {
			// A hive that was running already is adopted by the queen and
			// outlives it; the worker started here must not.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queenGrace)
			_, _ = s.qc.run(cctx, wire.Operation{Operation: wire.OpWorkerStop, HiveID: w.HiveID, WorkerID: w.WorkerID}, nil)
			cancel()
		}
		if serr := sq.stop(); serr != nil && err == nil {
			err = fmt.Errorf("stopping queen-rbee: %w", serr)
		}
	}()
	if w, err = s.startWorker(ctx); err != nil {
		return err
	}
	return s.generateSettled(ctx)
}

// startWorker starts the hive (a no-op when it runs; skipped where the queen
// cannot start hives yet) and spawns a worker for the model on it.
func (s *inferSession) startWorker(ctx context.Context) (wire.WorkerInfo, error) {
	_, err := s.qc.run(ctx, wire.Operation{Operation: wire.OpHiveStart, Alias: s.hive}, s.rep.Event)
	if err != nil && !wire.IsCode(err, wire.CodeNotImplemented) {
		return wire.WorkerInfo{}, err
	}
	ev, err := s.qc.run(ctx, wire.Operation{Operation: wire.OpWorkerSpawn, HiveID: s.hive, Model: s.op.Model}, s.rep.Event)
	s.rep.EndProgress()
	if err != nil {
		return wire.WorkerInfo{}, err
	}
	return decodeWorker(ev)
}

// generateSettled is generate right after a spawn: the queen learns of a
// worker from its heartbeats, which may trail the spawn's answer a little.
func (s *inferSession) generateSettled(ctx context.Context) error {
	deadline := time.Now().Add(spawnSettle)
	for {
		err := s.generate(ctx)
		if !wire.IsCode(err, wire.CodeNoWorker) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// generate runs the infer operation, writing tokens to stdout as they come.
func (s *inferSession) generate(ctx context.Context) error {
	ev, err := s.qc.run(ctx, s.op, func(e wire.Event) error {
		if e.Type == wire.TypeToken {
			return s.out.write(e.T)
		}
		return s.rep.Event(e)
	})
	if err != nil {
		return err
	}
	if ev.Type == wire.TypeEnd && !s.rep.Quiet {
		s.out.finish()
		s.rep.Say("%s", summary(ev))
	}
	return nil
}

func summary(e wire.Event) string {
	s := fmt.Sprintf("%d tokens (%s)", e.TokensOut, e.StopReason)
	if t := e.Timings; t != nil {
		if t.DecodeTPS > 0 {
			s += fmt.Sprintf(", %.1f tokens/s", t.DecodeTPS)
		}
		if t.TTFTMs > 0 {
			s += fmt.Sprintf(", first token after %.0f ms", t.TTFTMs)
		}
	}
	return s
}

// textOut writes generated text to stdout unbuffered, as each token comes,
// and ends it with a newline.
type textOut struct {
	w       io.Writer
	written bool
	lastNL  bool
}

func (o *textOut) write(t string) error {
	if t == "" {
		return nil
	}
	if _, err := io.WriteString(o.w, t); err != nil {
		return fmt.Errorf("writing the text: %w", err)
	}
	o.written, o.lastNL = true, strings.HasSuffix(t, "\n")
	return nil
}

// finish ends the text with a newline, once.
func (o *textOut) finish() {
	if o.written && !o.lastNL {
		_, _ = io.WriteString(o.w, "\n")
		o.lastNL = true
	}
}
