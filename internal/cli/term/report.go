package term

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// Reporter shows what a job is doing on stderr: narration as lines prefixed
// by their actor, progress as one redrawn line with a bar on a terminal, or
// as a line per tenth otherwise (a log file wants no carriage returns).
type Reporter struct {
	W     io.Writer
	TTY   bool
	Quiet bool

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
func (r *Reporter) Event(e wire.Event) error {
	switch e.Type {
	case wire.TypeNarration:
		r.Narrate(e.Actor, e.Human)
	case wire.TypeProgress:
		r.rate = e.Rate
		r.Progress(e.Done, e.Total, e.Unit)
	}
	return nil
}

func (r *Reporter) Narrate(actor, human string) {
	if r.Quiet {
		return
	}
	r.EndProgress()
	if actor == "" {
		actor = "?"
	}
	fmt.Fprintf(r.W, "[%s] %s\n", OneLine(actor), OneLine(human))
}

// say is the CLI's own narration.
func (r *Reporter) Say(format string, args ...any) {
	r.Narrate("rbee", fmt.Sprintf(format, args...))
}

func (r *Reporter) Progress(done, total int64, unit string) {
	if r.Quiet {
		return
	}
	if r.seen && done == r.lastDone && total == r.lastTotal {
		return // a repeat, such as the final 100% twice
	}
	if done < r.lastDone { // a new sequence, e.g. a second file
		r.EndProgress()
		r.printed = false
	}
	r.seen, r.lastDone, r.lastTotal = true, done, total
	if !r.TTY {
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
		fmt.Fprintf(r.W, "[progress] %s\n", line)
		return
	}
	line := progressText(done, total, unit)
	if total > 0 {
		line = bar(done, total, 24) + " " + line
	}
	if r.rate > 0 && unit == "bytes" {
		line += "  " + rateText(done, total, r.rate)
	}
	fmt.Fprintf(r.W, "\r\x1b[K%s", line)
	r.onScreen = true
	if total > 0 && done >= total {
		r.EndProgress()
	}
}

func (r *Reporter) EndProgress() {
	if r.onScreen {
		fmt.Fprintln(r.W)
		r.onScreen = false
	}
}

func bar(done, total int64, width int) string {
	n := int(min(done, total) * int64(width) / total)
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

func progressText(done, total int64, unit string) string {
	unit = OneLine(unit)
	if total <= 0 {
		return amount(done, unit)
	}
	pct := min(done, total) * 100 / total
	return fmt.Sprintf("%3d%%  %s / %s", pct, amount(done, unit), amount(total, unit))
}

func amount(n int64, unit string) string {
	if unit == "bytes" {
		return SizeText(n)
	}
	if unit == "" {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d %s", n, unit)
}

// SizeText writes a byte count for people: "27.1 MiB".
func SizeText(n int64) string {
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
	s := SizeText(int64(rate)) + "/s"
	if total > done {
		left := time.Duration(float64(total-done) / rate * float64(time.Second))
		s += ", " + left.Round(time.Second).String() + " left"
	}
	return s
}

// OneLine keeps a remote message to one line of plain text, so that neither
// a newline nor a terminal escape sequence from a daemon reaches the screen.
func OneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
