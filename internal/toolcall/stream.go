package toolcall

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

const (
	thinkOpen  = "<think>"
	thinkClose = "</think>"
	hermesTag  = "<tool_call>"
	hermesEnd  = "</tool_call>"
	pythonTag  = "<|python_tag|>"
	mistralTag = "[TOOL_CALLS]"
)

// where the reasoning layer is
type reasoningState int

const (
	rsDetect reasoningState = iota // a <think> may still open the output
	rsThink                        // inside <think>
	rsBody                         // past reasoning: the body layer has the text
)

// where the body layer is
type bodyState int

const (
	bText   bodyState = iota // content, looking for a marker
	bBare                    // a bare JSON call candidate at the start of bbuf
	bTagged                  // after a marker, its call not decided yet
	bAfter                   // right after a call
)

// Stream splits an answer as its text arrives. It is not safe for
// concurrent use.
type Stream struct {
	f       Format
	tools   map[string]struct{}
	markers []string
	bare    bool // calls without their marker count at the start and after calls
	newID   func(modelID string) string

	rs       reasoningState
	rbuf     string // text the reasoning layer holds
	rstarted bool   // some reasoning was emitted
	rws      string // trailing whitespace of the reasoning so far

	bs       bodyState
	bbuf     textBuf // text the body layer holds
	trimLead bool    // drop the whitespace after </think>
	atStart  bool    // a bare call may start here
	lead     string  // held text before the candidate, restored if it is no call
	marker   string  // the marker of a bTagged candidate
	closeTag string  // an optional closing tag expected after a call
	n        int     // calls so far
	sc       scanner

	out    []Delta
	closed bool
}

// NewStream starts splitting an answer in format f.
func NewStream(f Format, opt Options) *Stream {
	s := &Stream{f: f, tools: make(map[string]struct{}, len(opt.Tools))}
	for _, t := range opt.Tools {
		s.tools[t.Name] = struct{}{}
	}
	if len(s.tools) > 0 {
		switch f {
		case Llama3:
			s.markers, s.bare = []string{pythonTag}, true
		case Mistral:
			s.markers, s.bare = []string{mistralTag}, true
		default:
			s.markers, s.bare = []string{hermesTag}, true
		}
	}
	s.atStart = s.bare
	s.newID = func(modelID string) string {
		if f != Mistral {
			return newOpenAIID()
		}
		if isMistralID(modelID) {
			return modelID
		}
		return randomAlnum(9)
	}
	switch {
	case opt.ThinkingOpen:
		s.rs = rsThink
	case opt.Reasoning:
		s.rs = rsDetect
	default:
		s.rs = rsBody
	}
	return s
}

// Add takes the next piece of the output and returns what is decided.
func (s *Stream) Add(piece string) []Delta {
	if s.closed {
		return nil
	}
	s.feed(piece, false)
	return s.take()
}

// Close ends the output: held text that is no call is content (or
// reasoning, inside a think block that never closed).
func (s *Stream) Close() []Delta {
	if s.closed {
		return nil
	}
	s.closed = true
	s.feed("", true)
	return s.take()
}

func (s *Stream) take() []Delta {
	out := s.out
	s.out = nil
	return out
}

// feed runs the reasoning layer, which hands the text past reasoning to the
// body layer.
func (s *Stream) feed(piece string, final bool) {
	s.rbuf += piece
	for {
		switch s.rs {
		case rsDetect:
			t := trimLeftWS(s.rbuf)
			if strings.HasPrefix(t, thinkOpen) {
				s.rbuf, s.rs = t[len(thinkOpen):], rsThink
				continue
			}
			if !final && strings.HasPrefix(thinkOpen, t) {
				return
			}
			s.rs = rsBody
		case rsThink:
			if i := strings.Index(s.rbuf, thinkClose); i >= 0 {
				s.reason(s.rbuf[:i], true)
				s.rbuf, s.rs, s.trimLead = s.rbuf[i+len(thinkClose):], rsBody, true
				continue
			}
			keep := len(s.rbuf)
			if !final {
				keep -= holdBack(s.rbuf, []string{thinkClose})
			}
			s.reason(s.rbuf[:keep], final)
			s.rbuf = s.rbuf[keep:]
			return
		default:
			s.bbuf.add(s.rbuf)
			s.rbuf = ""
			s.body(final)
			return
		}
	}
}

// body runs the body layer over the text it holds.
func (s *Stream) body(final bool) {
	for {
		buf := s.bbuf.str()
		switch s.bs {
		case bText:
			if s.trimLead {
				t := trimLeftWS(buf)
				s.bbuf.consume(len(buf) - len(t))
				if buf = t; buf == "" && !final {
					return
				}
				s.trimLead = false
			}
			if s.atStart {
				t := trimLeftWS(buf)
				st := barePrefix(s.f, t)
				if st == needMore && !final {
					return
				}
				if st == complete {
					s.lead, s.bs = buf[:len(buf)-len(t)], bBare
					s.bbuf.consume(len(s.lead))
					s.sc.active = false
					continue
				}
				s.atStart = false
			}
			if i, m := findMarker(buf, s.markers); i >= 0 {
				pre := buf[:i]
				text := trimRightWS(pre)
				s.content(text)
				s.lead, s.marker, s.bs = pre[len(text):]+m, m, bTagged
				s.bbuf.consume(i + len(m))
				s.sc.active = false
				continue
			}
			if final {
				s.content(buf)
				s.bbuf.consume(len(buf))
				return
			}
			text := buf[:len(buf)-holdBack(buf, s.markers)]
			if len(s.markers) > 0 {
				// Whitespace right before a call is dropped, so it waits.
				text = trimRightWS(text)
			}
			s.content(text)
			s.bbuf.consume(len(text))
			return
		case bBare:
			var calls []parsedCall
			var end int
			var st status
			if s.f == Mistral {
				calls, end, st = s.callArray(buf)
			} else {
				end, st = s.scanValue(buf, 0)
				if st == complete {
					if c, id, ok := s.decodeCall([]byte(buf[:end])); ok {
						calls = []parsedCall{{c, id}}
					} else {
						st = invalid
					}
				}
			}
			if st == needMore && !final {
				return
			}
			if st != complete {
				s.noCall()
				continue
			}
			for _, c := range calls {
				s.call(c.Call, c.modelID)
			}
			s.bbuf.consume(end)
			s.bs = bAfter
		case bTagged:
			t := trimLeftWS(buf)
			calls, n, st := s.tagged(t)
			if st == needMore && !final {
				return
			}
			if st != complete {
				s.noCall()
				continue
			}
			for _, c := range calls {
				s.call(c.Call, c.modelID)
			}
			s.bbuf.consume(len(buf) - len(t) + n)
			s.bs = bAfter
			if s.marker == hermesTag {
				s.closeTag = hermesEnd
			}
		case bAfter:
			t := trimLeftWS(buf)
			s.bbuf.consume(len(buf) - len(t))
			if s.closeTag != "" {
				st := tagAt(t, s.closeTag)
				if st == needMore && !final {
					return
				}
				if st == complete {
					s.bbuf.consume(len(s.closeTag))
				}
				s.closeTag = ""
				continue
			}
			if s.f == Llama3 && strings.HasPrefix(t, ";") {
				// Llama 3 separates several calls with semicolons.
				s.bbuf.consume(1)
				continue
			}
			if t == "" && !final {
				return
			}
			s.atStart, s.bs = s.bare, bText
		}
	}
}

// noCall gives up the current candidate: its held start (whitespace and
// marker) is text, and the scan goes on after it.
func (s *Stream) noCall() {
	s.content(s.lead)
	s.lead, s.atStart, s.bs = "", false, bText
}

type parsedCall struct {
	Call
	modelID string
}

// tagged decides the call after the current marker; t is the text after
// it, leading whitespace removed.
func (s *Stream) tagged(t string) ([]parsedCall, int, status) {
	if t == "" {
		return nil, 0, needMore
	}
	object := func() ([]parsedCall, int, status) {
		end, st := s.scanValue(t, 0)
		if st != complete {
			return nil, 0, st
		}
		c, id, ok := s.decodeCall([]byte(t[:end]))
		if !ok {
			return nil, 0, invalid
		}
		return []parsedCall{{c, id}}, end, complete
	}
	switch s.marker {
	case pythonTag:
		if t[0] == '{' {
			return object()
		}
		c, n, st := s.builtinCall(t)
		return []parsedCall{{Call: c}}, n, st
	case mistralTag:
		if t[0] != '[' {
			c, id, n, st := s.mistralCall(t)
			return []parsedCall{{c, id}}, n, st
		}
		return s.callArray(t)
	default:
		return object()
	}
}

// callArray decides a JSON array of call objects at the start of t.
func (s *Stream) callArray(t string) ([]parsedCall, int, status) {
	end, st := s.scanValue(t, 0)
	if st != complete {
		return nil, 0, st
	}
	var items []json.RawMessage
	if json.Unmarshal([]byte(t[:end]), &items) != nil || len(items) == 0 {
		return nil, 0, invalid
	}
	calls := make([]parsedCall, 0, len(items))
	for _, it := range items {
		c, id, ok := s.decodeCall(it)
		if !ok {
			return nil, 0, invalid
		}
		calls = append(calls, parsedCall{c, id})
	}
	return calls, end, complete
}

func findMarker(buf string, markers []string) (int, string) {
	at, which := -1, ""
	for _, m := range markers {
		if i := strings.Index(buf, m); i >= 0 && (at < 0 || i < at) {
			at, which = i, m
		}
	}
	return at, which
}

func (s *Stream) call(c Call, modelID string) {
	s.lead = ""
	s.out = append(s.out,
		Delta{Call: &CallDelta{Index: s.n, ID: s.newID(modelID), Name: c.Name}},
		Delta{Call: &CallDelta{Index: s.n, Arguments: c.Arguments}})
	s.n++
}

func (s *Stream) content(text string) {
	if text == "" {
		return
	}
	if k := len(s.out) - 1; k >= 0 && s.out[k].Call == nil && s.out[k].Reasoning == "" {
		s.out[k].Content += text
		return
	}
	s.out = append(s.out, Delta{Content: text})
}

// reason emits reasoning text, trimmed of whitespace at both ends of the
// whole reasoning; closing says no more reasoning follows.
func (s *Stream) reason(text string, closing bool) {
	if !s.rstarted {
		text = trimLeftWS(text)
	}
	body := trimRightWS(text)
	if body != "" {
		body = s.rws + body
		s.rws = text[len(trimRightWS(text)):]
		s.rstarted = true
		if k := len(s.out) - 1; k >= 0 && s.out[k].Call == nil && s.out[k].Content == "" {
			s.out[k].Reasoning += body
		} else {
			s.out = append(s.out, Delta{Reasoning: body})
		}
	} else if s.rstarted {
		s.rws += text
	}
	if closing {
		s.rws = ""
	}
}

// textBuf is text that arrives at the end and leaves from the front, both
// in amortized constant time, so that a long call held back while it
// arrives in many pieces costs linear time.
type textBuf struct {
	b   strings.Builder
	off int
}

func (t *textBuf) str() string  { return t.b.String()[t.off:] }
func (t *textBuf) add(s string) { t.b.WriteString(s) }

func (t *textBuf) consume(n int) {
	t.off += n
	if t.off >= 4096 && 2*t.off >= t.b.Len() {
		// Strings taken before stay valid: Reset drops the buffer
		// without writing to it.
		rest := t.str()
		t.b.Reset()
		t.b.WriteString(rest)
		t.off = 0
	}
}

// holdBack is how much of the end of buf must wait: a proper prefix of a
// marker, or an incomplete UTF-8 sequence.
func holdBack(buf string, markers []string) int {
	hold := 0
	for _, m := range markers {
		for k := min(len(buf), len(m)-1); k > hold; k-- {
			if strings.HasPrefix(m, buf[len(buf)-k:]) {
				hold = k
				break
			}
		}
	}
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRuneInString(buf[i:]) {
				hold = max(hold, len(buf)-i)
			}
			break
		}
	}
	return hold
}
