package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rbee/rbee/internal/cli/term"
	"github.com/rbee/rbee/internal/wire"
)

var statusCommand = &command{
	name:    "status",
	summary: "show hives, workers and models at a glance",
	setup: func(a *App, fs *flag.FlagSet, g *globals) runFunc {
		return func(ctx context.Context, args []string) error {
			qc, err := connect(g)
			if err != nil {
				return err
			}
			rep := a.reporter(false)
			ev, err := qc.run(ctx, wire.Operation{Operation: wire.OpStatus}, rep.Event)
			if err != nil {
				return err
			}
			if g.json {
				return term.PrintJSON(a.Stdout, ev.Data)
			}
			var st wire.Status
			if err := json.Unmarshal(ev.Data, &st); err != nil {
				return fmt.Errorf("status answered a malformed result: %w", err)
			}
			return writeStatus(a.Stdout, st)
		}
	},
}

// writeStatus prints the status for people: the queen, then a table each
// for hives, workers, models and waiting requests.
func writeStatus(w io.Writer, st wire.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "queen-rbee\t%s\n", term.OneLine(st.Queen.URL))

	fmt.Fprintf(tw, "\nHIVE\tHOST\tPORT\tSTATE\tURL\n")
	for _, h := range st.Hives {
		state := h.State
		if h.Error != "" {
			state += " (" + h.Error + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", term.OneLine(h.Alias), term.OneLine(h.Host), h.HivePort, term.OneLine(state), term.OneLine(h.URL))
	}
	if len(st.Hives) == 0 {
		fmt.Fprintln(tw, "(no hives)")
	}

	fmt.Fprintf(tw, "\nWORKER\tHIVE\tMODEL\tSTATE\tLOAD\tPROMPT CACHE\tLAST SEEN\tURL\n")
	var why []string
	for _, wk := range st.Workers {
		l := load(wk)
		if wk.State == wire.StateGone {
			l = "-"
		}
		if wk.GoneReason != "" {
			why = append(why, fmt.Sprintf("%s is %s: %s", term.OneLine(wk.WorkerID), term.OneLine(wk.State), term.OneLine(wk.GoneReason)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", term.OneLine(wk.WorkerID), term.OneLine(wk.HiveID), term.OneLine(wk.Model),
			term.OneLine(wk.State), l, cacheText(wk.Cache), ago(wk.LastSeenMs), term.OneLine(wk.URL))
	}
	if len(st.Workers) == 0 {
		fmt.Fprintln(tw, "(no workers: start one with `rbee worker spawn -m MODEL`)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// Reasons are too long for a table cell.
	for _, line := range why {
		fmt.Fprintf(w, "  %s\n", line)
	}

	fmt.Fprintf(tw, "\nMODEL\tHIVE\tSIZE\tARCH\tQUANT\tPATH\n")
	for _, m := range st.Models {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", term.OneLine(m.ID), term.OneLine(m.HiveID), term.SizeText(m.SizeBytes),
			dash(m.Architecture), dash(m.Quantization), dash(m.Path))
	}
	if len(st.Models) == 0 {
		fmt.Fprintln(tw, "(no models)")
	}
	// Requests waiting in the queen for a free slot, only when there are.
	if len(st.Queues) > 0 {
		fmt.Fprintf(tw, "\nQUEUED MODEL\tWAITING\tLIMIT\n")
		for _, q := range st.Queues {
			fmt.Fprintf(tw, "%s\t%d\t%d\n", term.OneLine(q.Model), q.Waiting, q.Max)
		}
	}
	return tw.Flush()
}

// load is a worker's busy slots and queue: "1/2 busy, 3 queued".
func load(w wire.WorkerStatus) string {
	s := fmt.Sprintf("%d/%d busy", w.Active, w.Slots)
	if w.QueueLen > 0 {
		s += fmt.Sprintf(", %d queued", w.QueueLen)
	}
	return s
}

// cacheText is a worker's prompt cache: "3 seqs, 41 MiB, 87% hit".
func cacheText(c *wire.CacheStats) string {
	if c == nil {
		return "off"
	}
	return fmt.Sprintf("%d seqs, %s, %.0f%% hit", c.Sequences, term.SizeText(max(c.RAMBytes, 0)), 100*c.HitRate())
}

func ago(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	switch {
	case d < 0:
		return "-"
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s") + " ago"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return term.OneLine(s)
}
