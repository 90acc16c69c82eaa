// Package chattemplate renders a model's own chat template: the Jinja text a
// GGUF carries in tokenizer.chat_template, which turns an OpenAI-style
// conversation (messages, tools, tool calls and results, reasoning) into the
// exact prompt the model was trained on.
//
// Rendering follows what Hugging Face transformers' apply_chat_template does,
// since that is what the templates are written and tested against:
// trim_blocks and lstrip_blocks, raise_exception, strftime_now, a tojson that
// is Python's json.dumps (", " and ": " separators, keys in the order given,
// no HTML escaping, ensure_ascii off unless asked), and Python's sandbox
// limit on range(). The engine is github.com/ardanlabs/jinja.
//
// Tool-call arguments reach the template as llama.cpp's minja passes them:
// as the JSON text the client sent, unless the template only prints them
// right when given an object (Llama 3.1, Qwen2.5 and Mistral write
// `arguments | tojson`, which would quote the text again); then valid JSON
// arguments arrive as the parsed object, keys in their order. Parse finds
// out which by rendering a probe tool call both ways, as minja does.
//
// A template comes from a model file, so it is not trusted. Parse rejects
// oversized sources and deeply nested expressions (the engine's parser
// recurses); Render recovers the engine's panics, bounds range(), the output
// size and the wall time. What the engine offers no hook for cannot be
// bounded from outside: a template that loops forever over its own data or
// builds a huge string. Render gives up on such a render after RenderTimeout
// and marks the Template broken (every later Render fails at once), so at
// most one goroutine per Template is ever left behind, but that goroutine
// keeps its CPU until it ends. Unbounded macro recursion overflows the Go
// stack, which no Go code can recover from. Callers that must survive any
// file should render in a separate process.
package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ardanlabs/jinja"
)

// Limits on what a template may cost.
const (
	// MaxSourceLen bounds the template text. Real templates are at most a
	// few tens of KiB; GGUF readers keep strings up to 64 KiB.
	MaxSourceLen = 1 << 20
	// MaxNesting bounds how deeply brackets and blocks nest in the source;
	// the engine's parser and evaluator recurse once per level.
	MaxNesting = 200
	// MaxOutputLen bounds a rendered prompt. No context window is near it.
	MaxOutputLen = 16 << 20
	// MaxRange is the most items one range() may produce, as in Jinja's
	// sandbox (which transformers renders with).
	MaxRange = 100_000
	// MaxRangeTotal is the most items all range() calls of one render may
	// produce: loops nested over range() are the cheapest way to spin.
	MaxRangeTotal = 2_000_000
	// RenderTimeout bounds one render. A real template renders a long
	// conversation in well under a millisecond.
	RenderTimeout = 2 * time.Second
)

// ToolCall is one call an assistant made, in OpenAI's shape.
type ToolCall struct {
	ID       string
	Type     string // "function" when empty
	Function FunctionCall
}

// FunctionCall names the function and carries its arguments.
type FunctionCall struct {
	Name string
	// Arguments is the JSON text of the arguments, as OpenAI sends it.
	Arguments string
}

// Message is one message of the conversation.
type Message struct {
	Role             string
	Content          string
	ReasoningContent string
	ToolCalls        []ToolCall
	ToolCallID       string // role "tool": the call this answers
	Name             string
}

// Input is everything a render needs.
type Input struct {
	Messages []Message
	// Tools are OpenAI tool objects:
	// {"type":"function","function":{"name","description","parameters"}}.
	Tools               []json.RawMessage
	AddGenerationPrompt bool
	BOS, EOS            string // the model's BOS and EOS token text
	ReasoningEffort     string // passed as reasoning_effort when set
	EnableThinking      *bool  // passed as enable_thinking when set
	Now                 func() time.Time
}

// Errors.
var (
	// ErrTimeout: the render did not finish within RenderTimeout.
	ErrTimeout = errors.New("chat template: render timed out")
	// ErrBroken: an earlier render of this template timed out, so the
	// template is not used again.
	ErrBroken = errors.New("chat template: disabled after an earlier render timed out")
	// ErrTooLong: the rendered prompt exceeds MaxOutputLen.
	ErrTooLong = errors.New("chat template: rendered prompt too long")
)

// RaiseError is the error a template raises with raise_exception: the
// template refuses the conversation (roles that do not alternate, a system
// message the model does not support, ...). Message is the template's text.
type RaiseError struct{ Message string }

func (e *RaiseError) Error() string { return "chat template: " + e.Message }

// Template is a compiled chat template, safe for concurrent use.
type Template struct {
	tpl      *jinja.Template
	src      string
	tools    bool
	thinking bool
	// objectArgs: tool-call arguments go in as objects (see the package
	// comment).
	objectArgs bool
	timeout    time.Duration // RenderTimeout; tests shorten it
	maxOut     int           // MaxOutputLen; tests shorten it
	broken     atomic.Bool
}

// Parse compiles a chat template and renders probes: a one-message chat
// (an error other than *RaiseError fails Parse), a tool call (see
// objectArgs) and a tool list (see Tools). Compile once per model, render
// per request.
func Parse(src string) (t *Template, err error) {
	if len(src) > MaxSourceLen {
		return nil, fmt.Errorf("chat template: %d bytes exceeds the limit of %d", len(src), MaxSourceLen)
	}
	rewritten, err := prepare(src)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("chat template: internal error compiling: %v", p)
		}
	}()
	tpl, err := jinja.Compile(rewritten)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	t = &Template{tpl: tpl, src: src, timeout: RenderTimeout, maxOut: MaxOutputLen}
	// A template the engine cannot evaluate fails here, once, rather than
	// on every request; one that refuses this chat (raise_exception) may
	// still take others.
	_, err = t.Render(Input{Messages: []Message{{Role: "user", Content: "hi"}}, AddGenerationPrompt: true})
	var re *RaiseError
	if err != nil && !errors.As(err, &re) {
		return nil, err
	}
	t.objectArgs = t.probeObjectArgs()
	t.tools = t.probeTools()
	if t.broken.Load() {
		return nil, ErrTimeout // the probe render hung: the template is unusable
	}
	t.thinking = strings.Contains(src, "<think>")
	return t, nil
}

// Tools reports whether the template renders the tools it is given: a probe
// render with one tool prints the tool's name.
func (t *Template) Tools() bool { return t.tools }

// Thinking reports whether the template opens a <think> block, that is, the
// model is a reasoning model whose output starts with (or, when the prompt
// already opened the block, continues) its thinking.
func (t *Template) Thinking() bool { return t.thinking }

// Source returns the template text as given to Parse.
func (t *Template) Source() string { return t.src }

const probeTool = "rbee_probe_tool_name"

func (t *Template) probeTools() bool {
	in := Input{
		Messages:            []Message{{Role: "user", Content: "hi"}},
		Tools:               []json.RawMessage{json.RawMessage(`{"type":"function","function":{"name":"` + probeTool + `","description":"probe","parameters":{"type":"object","properties":{}}}}`)},
		AddGenerationPrompt: true,
		Now:                 func() time.Time { return time.Unix(0, 0).UTC() },
	}
	out, err := t.Render(in)
	return err == nil && strings.Contains(out, probeTool)
}

// probeObjectArgs renders a tool call whose arguments are given as text
// and as an object: objects are needed when only they print as JSON.
func (t *Template) probeObjectArgs() bool {
	const needle = "argument_needle"
	call := Input{Messages: []Message{
		{Role: "user", Content: "Hey"},
		{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_1___", Type: "function", Function: FunctionCall{
			Name: "ipython", Arguments: `{"` + needle + `": "print('Hello, World!')"}`}}}},
	}}
	printed := func(object bool) bool {
		out, err := t.render(call, object)
		return err == nil && (strings.Contains(out, `"`+needle+`":`) || strings.Contains(out, "'"+needle+"':") ||
			strings.Contains(out, "<parameter="+needle+">"))
	}
	return !printed(false) && printed(true)
}

type result struct {
	out string
	err error
}

// Render renders the conversation. Errors: *RaiseError when the template
// refuses the input, ErrTimeout, ErrBroken, ErrTooLong, or the engine's
// error for a template it cannot evaluate.
func (t *Template) Render(in Input) (string, error) {
	return t.render(in, t.objectArgs)
}

func (t *Template) render(in Input, objectArgs bool) (string, error) {
	if t.broken.Load() {
		return "", ErrBroken
	}
	st := &renderState{rangeLeft: MaxRangeTotal}
	data, err := buildData(in, st, objectArgs)
	if err != nil {
		return "", err
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("chat template: internal error rendering: %v", p)}
			}
		}()
		out, err := t.tpl.RenderValues(data)
		done <- result{out, err}
	}()
	timer := time.NewTimer(t.timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			var re *RaiseError
			if errors.As(r.err, &re) {
				return "", re
			}
			return "", fmt.Errorf("chat template: %w", r.err)
		}
		if len(r.out) > t.maxOut {
			return "", ErrTooLong
		}
		return r.out, nil
	case <-timer.C:
		st.stopped.Store(true)
		t.broken.Store(true)
		return "", ErrTimeout
	}
}

// PromptOpensThink reports whether prompt ends inside a <think> block that
// the template opened for the model (DeepSeek-R1's templates end the prompt
// with "<think>\n"): the model's output then starts with its reasoning and no
// opening tag.
func PromptOpensThink(prompt string) bool {
	open := strings.LastIndex(prompt, "<think>")
	return open >= 0 && !strings.Contains(prompt[open:], "</think>")
}
