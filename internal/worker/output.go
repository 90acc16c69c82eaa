package worker

import (
	"github.com/rbee/rbee/internal/generate"
	"github.com/rbee/rbee/internal/jobs"
	"github.com/rbee/rbee/internal/toolcall"
	"github.com/rbee/rbee/internal/wire"
)

// output turns generated pieces into token events: the text as it comes,
// or, when the request's output is read (tools, a reasoning template), the
// answer, reasoning and tool-call pieces that package toolcall splits it
// into. Log-probabilities ride on the first event after their tokens.
type output struct {
	j      *jobs.Job
	stream *toolcall.Stream
	i      int
	calls  bool
	lps    []wire.TokenLogprob
}

func newOutput(j *jobs.Job, parse *parsing) *output {
	o := &output{j: j}
	if parse != nil {
		o.stream = toolcall.NewStream(parse.format, parse.opt)
	}
	return o
}

func (o *output) piece(p generate.Piece) error {
	o.lps = append(o.lps, p.Logprobs...)
	if o.stream == nil {
		o.emit(wire.NewToken(p.Text, 0))
		return nil
	}
	o.deltas(o.stream.Add(p.Text))
	return nil
}

func (o *output) deltas(ds []toolcall.Delta) {
	for _, d := range ds {
		tok := wire.NewToken(d.Content, 0)
		tok.R = d.Reasoning
		if c := d.Call; c != nil {
			o.calls = true
			tok.Call = &wire.ToolCallDelta{Index: c.Index, ID: c.ID, Name: c.Name, Arguments: c.Arguments}
		}
		o.emit(tok)
	}
}

func (o *output) emit(tok wire.Token) {
	tok.I = o.i
	tok.Logprobs, o.lps = o.lps, nil
	o.j.Emit(tok)
	o.i++
}

// finish flushes what the parser held back and reports whether the model
// called a tool.
func (o *output) finish() bool {
	if o.stream != nil {
		o.deltas(o.stream.Close())
	}
	if len(o.lps) > 0 {
		o.emit(wire.NewToken("", 0))
	}
	return o.calls
}
