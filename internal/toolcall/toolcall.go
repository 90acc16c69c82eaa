package toolcall

import (
	"encoding/json"
	"strings"
)

// Format is a family's tool call syntax (see the package comment). A
// Format this package does not know is read as Generic.
type Format string

const (
	Generic Format = "generic"
	Hermes  Format = "hermes"
	Llama3  Format = "llama3"
	Mistral Format = "mistral"
)

// DetectFormat picks the call syntax of a GGUF chat template from its
// source, with llama.cpp's tests (common/chat.cpp) in llama.cpp's order. A
// template that knows no tools, or none at all, is Generic.
func DetectFormat(templateSource string) Format {
	switch {
	case strings.Contains(templateSource, "<tool_call>"):
		return Hermes
	case strings.Contains(templateSource, "<|start_header_id|>ipython<|end_header_id|>"),
		strings.Contains(templateSource, "<|python_tag|>"),
		// Templates that build the header from the role name.
		strings.Contains(templateSource, "<|start_header_id|>") && strings.Contains(templateSource, "ipython"):
		return Llama3
	case strings.Contains(templateSource, "[TOOL_CALLS]"):
		return Mistral
	}
	return Generic
}

// DetectReasoning tells whether a chat template opens <think> blocks
// (Qwen3, DeepSeek-R1 and their distills), for Options.Reasoning.
func DetectReasoning(templateSource string) bool {
	return strings.Contains(templateSource, "<think>")
}

// PromptOpensThinking tells whether a rendered prompt ends inside a
// <think> block (Qwen3 and DeepSeek-R1 templates open it for the model),
// for Options.ThinkingOpen.
func PromptOpensThinking(prompt string) bool {
	return strings.HasSuffix(trimRightWS(prompt), thinkOpen)
}

// Call is one parsed tool call. Arguments is a compact JSON object text, as
// OpenAI's function.arguments.
type Call struct {
	ID, Name, Arguments string
}

// Result is a whole answer split up.
type Result struct {
	Content, Reasoning string
	Calls              []Call
}

// Tool is one tool of the request.
type Tool struct {
	Name       string
	Parameters json.RawMessage
}

// Options say what to look for in the output.
type Options struct {
	// Reasoning: the template opens <think> blocks, so one at the start of
	// the output is reasoning.
	Reasoning bool
	// ThinkingOpen: the prompt already ended inside <think>, so the output
	// starts in reasoning.
	ThinkingOpen bool
	// Tools are the request's tools; calls to other names stay text, and
	// with none no call is recognised.
	Tools []Tool
}

// Parse splits a whole answer.
func Parse(f Format, text string, opt Options) Result {
	s := NewStream(f, opt)
	return collect(append(s.Add(text), s.Close()...))
}

// collect assembles deltas into a Result, as an OpenAI client reassembles
// a stream.
func collect(ds []Delta) Result {
	var r Result
	var content, reasoning strings.Builder
	for _, d := range ds {
		content.WriteString(d.Content)
		reasoning.WriteString(d.Reasoning)
		if c := d.Call; c != nil {
			if c.Index == len(r.Calls) {
				r.Calls = append(r.Calls, Call{ID: c.ID, Name: c.Name})
			}
			r.Calls[c.Index].Arguments += c.Arguments
		}
	}
	r.Content, r.Reasoning = content.String(), reasoning.String()
	return r
}

// Delta is one piece of a streamed answer: text for content or
// reasoning_content, or a piece of a tool call.
type Delta struct {
	Content, Reasoning string
	Call               *CallDelta
}

// CallDelta is one entry of OpenAI's delta.tool_calls. A call's first
// delta has Index, ID and Name and empty Arguments; the next has the
// complete Arguments.
type CallDelta struct {
	Index     int
	ID, Name  string
	Arguments string
}
