package openai

import (
	"net/http"

	"github.com/rbee/rbee/internal/wire"
)

// chat answers POST /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) error {
	var in chatRequest
	if err := s.decode(w, r, &in, chatRefused); err != nil {
		return err
	}
	maxTokens, maxParam := in.MaxCompletionTokens, "max_completion_tokens"
	if maxTokens == nil {
		maxTokens, maxParam = in.MaxTokens, "max_tokens"
	}
	req, aerr := samplerRequest(in.Model, maxTokens, maxParam, in.sampler)
	if aerr != nil {
		return aerr
	}
	if req.Messages, aerr = chatMessages(in.Messages); aerr != nil {
		return aerr
	}
	if aerr = chatOptions(&in, &req); aerr != nil {
		return aerr
	}
	if aerr = validate(req); aerr != nil {
		return aerr
	}
	onlyFirstCall := in.ParallelToolCalls != nil && !*in.ParallelToolCalls

	c := &chatChunks{id: newID("chatcmpl-"), created: s.opt.Now().Unix(), model: in.Model,
		logprobs: req.Logprobs, calls: callTracker{onlyFirst: onlyFirstCall}}
	if in.Stream {
		return s.stream(w, r, in.Model, []wire.InferenceRequest{req}, c, in.StreamOptions != nil && in.StreamOptions.IncludeUsage)
	}
	a := newAnswer(onlyFirstCall)
	end, err := s.collect(r.Context(), in.Model, req, a)
	if err != nil {
		return err
	}
	choice := ChatChoice{Message: a.reply(), FinishReason: finishReason(end.StopReason)}
	if req.Logprobs {
		choice.Logprobs = &ChatLogprobs{Content: chatLogprobs(a.logprobs)}
	}
	writeJSON(w, http.StatusOK, ChatCompletion{
		ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
		Choices: []ChatChoice{choice},
		Usage:   usage(end),
	})
	return nil
}

// chatChunks builds the chunks of a streamed chat completion: the role
// first, then the reasoning, content and tool calls piece by piece, then
// the finish reason, then the usage when asked for.
type chatChunks struct {
	id       string
	created  int64
	model    string
	logprobs bool
	calls    callTracker
}

func (c *chatChunks) chunk(d ChatDelta, finish *string) ChatChunk {
	return ChatChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []ChatChunkChoice{{Delta: d, FinishReason: finish}}}
}

func (c *chatChunks) head(int) any {
	empty := ""
	return c.chunk(ChatDelta{Role: "assistant", Content: &empty}, nil)
}

func (c *chatChunks) event(_ int, e wire.Event) any {
	var d ChatDelta
	if e.T != "" {
		d.Content = &e.T
	}
	if e.R != "" {
		d.ReasoningContent = &e.R
	}
	if e.Call != nil {
		if td, ok := c.calls.delta(e.Call); ok {
			d.ToolCalls = []ToolCallDelta{td}
		}
	}
	var lp *ChatLogprobs
	if c.logprobs && len(e.Logprobs) > 0 {
		lp = &ChatLogprobs{Content: chatLogprobs(e.Logprobs)}
	}
	if d.Content == nil && d.ReasoningContent == nil && d.ToolCalls == nil && lp == nil {
		return nil
	}
	ch := c.chunk(d, nil)
	ch.Choices[0].Logprobs = lp
	return ch
}

func (c *chatChunks) tail(_ int, reason string) any { return c.chunk(ChatDelta{}, &reason) }

func (c *chatChunks) usage(u *Usage) any {
	return ChatChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []ChatChunkChoice{}, Usage: u}
}
