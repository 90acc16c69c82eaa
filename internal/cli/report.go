package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// reporter shows what a job is doing on stderr: narration as lines prefixed
// by their actor, progress as one redrawn line with a bar on a terminal, or
// as a line per tenth otherwise (a log file wants no carriage returns).
type reporter struct {
	w     io.Writer
	tty   bool
	quiet bool

	onScreen  bool  // a progress line is drawn and not yet ended
	seen      bool  // a progress event came
	lastDone  int64 // of the progress sequence being shown
	lastTotal int64
	printed   bool  // a line of this sequence was printed, when not a terminal
	lastStep  int64 // the tenth it showed

	rate float64 // units per second of the latest progress event; 0: unknown
}

// event shows narration and progress and ignores everything else, so it can
// be a job stream's callback as is.
func (r *reporter) event(e wire.Event) error {
	switch e.Type {
	case wire.TypeNarration:
		r.narrate(e.Actor, e.Human)
	case wire.TypeProgress:
		r.rate = e.Rate
		r.progress(e.Done, e.Total, e.Unit)
	}
	return nil
}

func (r *reporter) narrate(actor, human string) {
	if r.quiet {
		return
	}
	r.endProgress()
	if actor == "" {
		actor = "?"
	}
	fmt.Fprintf(r.w, "[%s] %s\n", oneLine(actor), oneLine(human))
}

// say is the CLI's own narration.
func (r *reporter) say(format string, args ...any) {
	r.narrate("rbee", fmt.Sprintf(format, args...))
}

func (r *reporter) progress(done, total int64, unit string) {
	if r.quiet {
		return
	}
	if r.seen && done == r.lastDone && total == r.lastTotal {
		return // a repeat, such as the final 100% twice
	}
	if done < r.lastDone { // a new sequence, e.g. a second file
		r.endProgress()
		r.printed = false
	}
	r.seen, r.lastDone, r.lastTotal = true, done, total
	if !r.tty {
		if total <= 0 {
			return
		}
		step := min(done*10/total, 10)
		if r.printed && step <= r.lastStep {
			return
		}
		r.printed, r.lastStep = true, step
		line := progressText(done, total, unit)
		if r.rate > 0 && unit == "bytes" {
			line += "  " + rateText(done, total, r.rate)
		}
		fmt.Fprintf(r.w, "[progress] %s\n", line)
		return
	}
	line := progressText(done, total, unit)
	if total > 0 {
		line = bar(done, total, 24) + " " + line
	}
	if r.rate > 0 && unit == "bytes" {
		line += "  " + rateText(done, total, r.rate)
	}
	fmt.Fprintf(r.w, "\r\x1b[K%s", line)
	r.onScreen = true
	if total > 0 && done >= total {
		r.endProgress()
	}
}

func (r *reporter) endProgress() {
	if r.onScreen {
		fmt.Fprintln(r.w)
		r.onScreen = false
	}
}

func bar(done, total int64, width int) string {
	n := int(min(done, total) * int64(width) / total)
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

func progressText(done, total int64, unit string) string {
	unit = oneLine(unit)
	if total <= 0 {
		return amount(done, unit)
	}
	pct := min(done, total) * 100 / total
	return fmt.Sprintf("%3d%%  %s / %s", pct, amount(done, unit), amount(total, unit))
}

func amount(n int64, unit string) string {
	if unit == "bytes" {
		return sizeText(n)
	}
	if unit == "" {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// sizeText writes a byte count for people: "27.1 MiB".
func sizeText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// rateText is a download's speed and, when the size is known, the time
// left: "12.3 MiB/s, 1m05s left".
func rateText(done, total int64, rate float64) string {
	s := sizeText(int64(rate)) + "/s"
	if total > done {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	}
	return s
}
