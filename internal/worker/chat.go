package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"

	"github.com/rbee/rbee/internal/chattemplate"
	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/grammar"
	"github.com/rbee/rbee/internal/toolcall"
	"github.com/rbee/rbee/internal/wire"
)

// chat is how a loaded model turns a conversation into a prompt, and its
// output back into an answer, reasoning and tool calls. The GGUF's own
// Jinja template comes first; one the Go engine cannot parse falls back to
// llama.cpp's built-in formats (engine.Model.ChatPrompt), which fall back
// to the plain format.
type chat struct {
	tmpl     *chattemplate.Template // nil: none, or not renderable
	format   toolcall.Format        // the template's tool-call syntax; Generic when it knows no tools
	bos, eos string
}

func newChat(info engine.Info) *chat {
	c := &chat{format: toolcall.Generic, bos: info.BOSText, eos: info.EOSText}
	if info.ChatTemplate == "" {
		slog.Info("chat template: the GGUF has none; conversations use the plain format")
		return c
	}
	t, err := chattemplate.Parse(info.ChatTemplate)
	if err != nil {
		slog.Warn("chat template: the Go Jinja engine cannot render the GGUF's template; conversations use llama.cpp's built-in formats", "err", err)
		return c
	}
	c.tmpl = t
	if t.Tools() {
		c.format = toolcall.DetectFormat(info.ChatTemplate)
	}
	slog.Info("chat template: the GGUF's own (Jinja)", "tool_format", c.format, "thinking", t.Thinking())
	return c
}

// rendered is a request made ready for the model: its prompt, how to read
// its output (nil: plain text), and the grammar its output must follow.
type rendered struct {
	prompt  string
	parse   *parsing
	grammar string
	special bool // the tool-call syntax uses control tokens
}

// parsing says how to split the output into answer, reasoning and calls.
type parsing struct {
	format toolcall.Format
	opt    toolcall.Options
}

func toolsActive(req wire.InferenceRequest) bool {
	return len(req.Tools) > 0 && (req.ToolChoice == nil || req.ToolChoice.Mode != wire.ToolChoiceNone)
}

// render builds the prompt and the output rules of req. Errors are the
// request's fault (400).
func (c *chat) render(m engine.Model, req wire.InferenceRequest) (rendered, error) {
	var r rendered
	tools := toolsActive(req)
	choice := toolcall.Choice{Mode: wire.ToolChoiceAuto}
	if req.ToolChoice != nil {
		choice = toolcall.Choice{Mode: req.ToolChoice.Mode, Name: req.ToolChoice.Name}
	}
	var raw []json.RawMessage
	var specs []toolcall.Tool
	for _, t := range req.Tools {
		b, _ := json.Marshal(t)
		raw = append(raw, b)
		specs = append(specs, toolcall.Tool{Name: t.Function.Name, Parameters: t.Function.Parameters})
	}
	format := c.format
	if len(req.Messages) == 0 {
		r.prompt = req.Prompt
	} else {
		var err error
		if r.prompt, format, err = c.conversation(m, req, tools, raw, choice); err != nil {
			return r, err
		}
	}
	thinking := c.tmpl != nil && c.tmpl.Thinking() && len(req.Messages) > 0
	if tools || thinking {
		r.parse = &parsing{format: format, opt: toolcall.Options{
			Reasoning:    thinking,
			ThinkingOpen: thinking && chattemplate.PromptOpensThink(r.prompt),
		}}
		if tools {
			r.parse.opt.Tools = specs
		}
	}
	r.special = tools && (format == toolcall.Llama3 || format == toolcall.Mistral)

	forced := tools && (choice.Mode == wire.ToolChoiceRequired || choice.Mode == wire.ToolChoiceFunction)
	if f := req.ResponseFormat; f != nil && f.Type != wire.FormatText {
		if forced {
			return r, wire.BadRequest("response_format and a required tool_choice cannot both constrain the answer")
		}
		switch f.Type {
		case wire.FormatJSONObject:
			r.grammar = grammar.JSONObject()
		case wire.FormatJSONSchema:
			g, err := grammar.FromSchema(f.Schema)
			if err != nil {
				return r, wire.BadRequest("response_format json_schema: %v", err)
			}
			r.grammar = g
		}
	}
	if forced {
		g, err := toolcall.Grammar(format, specs, choice)
		if err != nil {
			return r, wire.BadRequest("tools: %v", err)
		}
		r.grammar = g
	}
	return r, nil
}

// conversation renders req's messages, and says which tool-call syntax the
// prompt asks for.
func (c *chat) conversation(m engine.Model, req wire.InferenceRequest, tools bool, raw []json.RawMessage, choice toolcall.Choice) (string, toolcall.Format, error) {
	if c.tmpl != nil {
		in := chattemplate.Input{
			Messages: templateMessages(req.Messages, c.format == toolcall.Mistral), AddGenerationPrompt: true,
			BOS: c.bos, EOS: c.eos, ReasoningEffort: req.ReasoningEffort,
		}
		format := c.format
		if tools && format != toolcall.Generic {
			in.Tools = raw
		} else if tools {
			in.Messages = templateMessages(genericMessages(req.Messages, toolcall.GenericPrompt(raw, choice)), false)
		}
		prompt, err := c.tmpl.Render(in)
		if err == nil {
			return prompt, format, nil
		}
		// A template that refuses a conversation (Gemma's refuses a system
		// message) or fails leaves it to llama.cpp's formats, which take
		// any: what people expect of a server.
		var raise *chattemplate.RaiseError
		if errors.As(err, &raise) {
			slog.Info("the chat template refuses the conversation; this request uses llama.cpp's built-in formats", "why", raise.Message)
		} else {
			slog.Warn("chat template failed; this request uses llama.cpp's built-in formats", "err", err)
		}
	}
	msgs := req.Messages
	if tools {
		msgs = genericMessages(msgs, toolcall.GenericPrompt(raw, choice))
	} else {
		msgs = genericMessages(msgs, "")
	}
	flat := make([]engine.ChatMessage, len(msgs))
	for i, msg := range msgs {
		flat[i] = engine.ChatMessage{Role: msg.Role, Content: msg.Content}
	}
	prompt, err := m.ChatPrompt(flat)
	if err != nil {
		return "", toolcall.Generic, wire.BadRequest("cannot render the conversation: %v", err)
	}
	return prompt, toolcall.Generic, nil
}

// templateMessages are msgs as chat templates read them. Mistral's
// templates take only call ids of 9 letters and digits (what its models
// were trained on), so shortIDs maps the client's ids onto such ones.
func templateMessages(msgs []wire.ChatMessage, shortIDs bool) []chattemplate.Message {
	id := func(s string) string {
		if !shortIDs || s == "" {
			return s
		}
		h := fnv.New64a()
		h.Write([]byte(s))
		v := h.Sum64()
		const alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
		b := make([]byte, 9)
		for i := range b {
			b[i] = alnum[v%uint64(len(alnum))]
			v /= uint64(len(alnum))
		}
		return string(b)
	}
	out := make([]chattemplate.Message, len(msgs))
	for i, m := range msgs {
		out[i] = chattemplate.Message{Role: m.Role, Content: m.Content, ReasoningContent: m.ReasoningContent,
			ToolCallID: id(m.ToolCallID), Name: m.Name}
		for _, tc := range m.ToolCalls {
			out[i].ToolCalls = append(out[i].ToolCalls, chattemplate.ToolCall{ID: id(tc.ID), Type: "function",
				Function: chattemplate.FunctionCall{Name: tc.Function.Name, Arguments: tc.Function.Arguments}})
		}
	}
	return out
}

// genericMessages writes a conversation with tools for a template that
// knows none, in the generic format (see package toolcall): the tools'
// description joins the system message, the assistant's calls become
// <tool_call> blocks, tool results user turns in <tool_response> blocks.
func genericMessages(msgs []wire.ChatMessage, system string) []wire.ChatMessage {
	var out []wire.ChatMessage
	if system != "" {
		if len(msgs) > 0 && msgs[0].Role == "system" {
			out = append(out, wire.ChatMessage{Role: "system", Content: msgs[0].Content + "\n\n" + system})
			msgs = msgs[1:]
		} else {
			out = append(out, wire.ChatMessage{Role: "system", Content: system})
		}
	}
	for _, m := range msgs {
		switch {
		case len(m.ToolCalls) > 0:
			var b strings.Builder
			b.WriteString(m.Content)
			for _, tc := range m.ToolCalls {
				args := tc.Function.Arguments
				if !json.Valid([]byte(args)) {
					args = "{}"
				}
				name, _ := json.Marshal(tc.Function.Name)
				if b.Len() > 0 {
					b.WriteString("\n")
				}
				fmt.Fprintf(&b, "<tool_call>\n{\"name\": %s, \"arguments\": %s}\n</tool_call>", name, args)
			}
			out = append(out, wire.ChatMessage{Role: m.Role, Content: b.String()})
		case m.Role == "tool":
			out = append(out, wire.ChatMessage{Role: "user", Content: "<tool_response>\n" + m.Content + "\n</tool_response>"})
		default:
			out = append(out, wire.ChatMessage{Role: m.Role, Content: m.Content})
		}
	}
	return out
}
