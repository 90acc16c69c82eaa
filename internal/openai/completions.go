package openai

import "net/http"

// defaultCompletionTokens is max_tokens of /v1/completions when a request
// leaves it out, as OpenAI documents it. Chat completions have no such
// default: they run to the end of the answer or of the context.
const defaultCompletionTokens = 16

// completions answers POST /v1/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) error {
	var in completionRequest
	if err := s.decode(w, r, &in); err != nil {
		return err
	}
	if in.MaxTokens == nil {
		n := int64(defaultCompletionTokens)
		in.MaxTokens = &n
	}
	p := sampling{model: in.Model, maxTokens: in.MaxTokens, maxParam: "max_tokens",
		temperature: in.Temperature, topP: in.TopP, seed: in.Seed, stop: in.Stop, n: in.N}
	req, aerr := p.inferenceRequest()
	if aerr != nil {
		return aerr
	}
	switch {
	case in.BestOf != nil && *in.BestOf != 1:
		return badParam("best_of", "best_of must be 1: rbee generates one choice per request, got %d", *in.BestOf)
	case in.Suffix != nil && *in.Suffix != "":
		return badParam("suffix", "suffix (text after the insertion) is not supported")
	}
	if req.Prompt, aerr = promptText(in.Prompt); aerr != nil {
		return aerr
	}
	if err := req.Validate(); err != nil {
		return badParam("", "%v", err)
	}

	c := &completionChunks{id: newID("cmpl-"), created: s.opt.Now().Unix(), model: in.Model}
	if in.Echo {
		c.echo = req.Prompt
	}
	if in.Stream {
		return s.stream(w, r, in.Model, req, c, in.StreamOptions != nil && in.StreamOptions.IncludeUsage)
	}
	text, end, err := s.collect(r, in.Model, req)
	if err != nil {
		return err
	}
	reason := finishReason(end.StopReason)
	out := c.chunk(c.echo+text, &reason)
	out.Usage = usage(end)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// completionChunks builds the events of a streamed completion: the text
// piece by piece (the prompt first, with echo), then the finish reason, then
// the usage when asked for.
type completionChunks struct {
	id      string
	created int64
	model   string
	echo    string
}

func (c *completionChunks) chunk(text string, finish *string) Completion {
	return Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []CompletionChoice{{Text: text, Logprobs: null, FinishReason: finish}}}
}

func (c *completionChunks) head() any {
	if c.echo == "" {
		return nil
	}
	return c.chunk(c.echo, nil)
}

func (c *completionChunks) piece(text string) any { return c.chunk(text, nil) }

func (c *completionChunks) tail(reason string) any { return c.chunk("", &reason) }

func (c *completionChunks) usage(u *Usage) any {
	return Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []CompletionChoice{}, Usage: u}
}
