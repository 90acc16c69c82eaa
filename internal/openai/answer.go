package openai

import (
	"strings"

	"github.com/rbee/rbee/internal/wire"
)

// answer gathers the token events of one choice: the answer text, the
// reasoning, the tool calls and the log-probabilities.
type answer struct {
	text, reasoning strings.Builder
	calls           []wire.ToolCall
	logprobs        []wire.TokenLogprob
	tracker         callTracker
}

func newAnswer(onlyFirstCall bool) *answer {
	return &answer{tracker: callTracker{onlyFirst: onlyFirstCall}}
}

func (a *answer) add(e wire.Event) {
	a.text.WriteString(e.T)
	a.reasoning.WriteString(e.R)
	a.logprobs = append(a.logprobs, e.Logprobs...)
	if e.Call == nil {
		return
	}
	d, ok := a.tracker.delta(e.Call)
	if !ok {
		return
	}
	if d.Index == len(a.calls) {
		a.calls = append(a.calls, wire.ToolCall{ID: d.ID, Type: "function", Function: wire.ToolCallFunction{Name: d.Function.Name}})
	}
	a.calls[d.Index].Function.Arguments += d.Function.Arguments
}

// reply is the chat message of the answer: content null when the answer
// is only tool calls.
func (a *answer) reply() AssistantReply {
	m := AssistantReply{Role: "assistant", ReasoningContent: a.reasoning.String(), ToolCalls: a.calls}
	if text := a.text.String(); text != "" || len(a.calls) == 0 {
		m.Content = &text
	}
	for i := range m.ToolCalls {
		if m.ToolCalls[i].Function.Arguments == "" {
			m.ToolCalls[i].Function.Arguments = "{}"
		}
	}
	return m
}

// callTracker turns the worker's tool-call deltas into OpenAI's: calls
// numbered from 0 in the order they start, an id for each (the worker's,
// or a new one), the type and name on a call's first delta only. With
// parallel_tool_calls false, only the first call is kept.
type callTracker struct {
	onlyFirst bool
	pos       map[int]int // the worker's index -> OpenAI's
	ids       []string
}

// delta is the OpenAI delta of d; false when d's call is dropped.
func (t *callTracker) delta(d *wire.ToolCallDelta) (ToolCallDelta, bool) {
	if t.pos == nil {
		t.pos = map[int]int{}
	}
	i, known := t.pos[d.Index]
	if !known {
		if t.onlyFirst && len(t.ids) > 0 {
			return ToolCallDelta{}, false
		}
		i = len(t.ids)
		t.pos[d.Index] = i
		id := d.ID
		if id == "" {
			id = newID("call_")
		}
		t.ids = append(t.ids, id)
		return ToolCallDelta{Index: i, ID: id, Type: "function", Function: FunctionDelta{Name: d.Name, Arguments: d.Arguments}}, true
	}
	return ToolCallDelta{Index: i, Function: FunctionDelta{Arguments: d.Arguments}}, true
}

// chatLogprobs are the worker's log-probabilities in the chat shape: every
// key present, top_logprobs an empty list rather than absent.
func chatLogprobs(in []wire.TokenLogprob) []TokenLogprob {
	out := make([]TokenLogprob, len(in))
	for i, l := range in {
		out[i] = TokenLogprob{Token: l.Token, Logprob: l.Logprob, Bytes: tokenBytes(l.Bytes, l.Token), TopLogprobs: make([]TopLogprob, len(l.Top))}
		for j, t := range l.Top {
			out[i].TopLogprobs[j] = TopLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: tokenBytes(t.Bytes, t.Token)}
		}
	}
	return out
}

// tokenBytes are a token's UTF-8 bytes: the worker's (a token may hold
// part of a character), else the token's.
func tokenBytes(b []int, token string) []int {
	if b != nil {
		return b
	}
	out := make([]int, len(token))
	for i := range len(token) {
		out[i] = int(token[i])
	}
	return out
}

// legacyLogprobs builds the completions' log-probabilities of one choice
// piece by piece, tracking where each token starts in the choice's text.
type legacyLogprobs struct {
	offset int
}

// add is the completions' shape of in. Each top_logprobs map holds the
// likeliest tokens and the chosen one, so up to logprobs+1 entries, as
// OpenAI's legacy API answers.
func (l *legacyLogprobs) add(in []wire.TokenLogprob) *CompletionLogprobs {
	out := &CompletionLogprobs{Tokens: []string{}, TokenLogprobs: []float64{}, TopLogprobs: []map[string]float64{}, TextOffset: []int{}}
	for _, t := range in {
		out.Tokens = append(out.Tokens, t.Token)
		out.TokenLogprobs = append(out.TokenLogprobs, t.Logprob)
		top := make(map[string]float64, len(t.Top)+1)
		for _, a := range t.Top {
			top[a.Token] = a.Logprob
		}
		top[t.Token] = t.Logprob
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, l.offset)
		l.offset += len(tokenBytes(t.Bytes, t.Token))
	}
	return out
}
