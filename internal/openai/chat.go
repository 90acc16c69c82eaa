package openai

import "net/http"

// chat answers POST /v1/chat/completions.
func (s *Server) chat(w http.ResponseWriter, r *http.Request) error {
	var in chatRequest
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	p := sampling{model: in.Model, maxTokens: in.MaxCompletionTokens, maxParam: "max_completion_tokens",
		temperature: in.Temperature, topP: in.TopP, seed: in.Seed, stop: in.Stop, n: in.N}
	if p.maxTokens == nil {
		p.maxTokens, p.maxParam = in.MaxTokens, "max_tokens"
	}
	req, aerr := p.inferenceRequest()
	if aerr != nil {
		return aerr
	}
	if req.Messages, aerr = chatMessages(in.Messages); aerr != nil {
		return aerr
	}
	if err := req.Validate(); err != nil {
		return badParam("", "%v", err)
	}

	c := &chatChunks{id: newID("chatcmpl-"), created: s.opt.Now().Unix(), model: in.Model}
	if in.Stream {
		return s.stream(w, r, in.Model, req, c, in.StreamOptions != nil && in.StreamOptions.IncludeUsage)
	}
	text, end, err := s.collect(r, in.Model, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ChatCompletion{
		ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
		Choices: []ChatChoice{{
			Message:      AssistantReply{Role: "assistant", Content: text},
			Logprobs:     null,
			FinishReason: finishReason(end.StopReason),
		}},
		Usage: usage(end),
	})
	return nil
}

// chatChunks builds the chunks of a streamed chat completion: the role
// first, then the content piece by piece, then the finish reason, then
// the usage when asked for.
type chatChunks struct {
	id      string
	created int64
	model   string
}

func (c *chatChunks) chunk(d ChatDelta, finish *string) ChatChunk {
	return ChatChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []ChatChunkChoice{{Delta: d, Logprobs: null, FinishReason: finish}}}
}

func (c *chatChunks) head() any {
	empty := ""
	return c.chunk(ChatDelta{Role: "assistant", Content: &empty}, nil)
}

func (c *chatChunks) piece(text string) any { return c.chunk(ChatDelta{Content: &text}, nil) }

func (c *chatChunks) tail(reason string) any { return c.chunk(ChatDelta{}, &reason) }

func (c *chatChunks) usage(u *Usage) any {
	return ChatChunk{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		Choices: []ChatChunkChoice{}, Usage: u}
}
