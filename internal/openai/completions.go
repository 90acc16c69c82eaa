package openai

import (
	"net/http"

	"github.com/rbee/rbee/internal/wire"
)

// defaultCompletionTokens is max_tokens of /v1/completions when a request
// leaves it out, as OpenAI documents it. Chat completions have no such
// default: they run to the end of the answer or of the context.
const defaultCompletionTokens = 16

// maxLegacyLogprobs is the largest logprobs of /v1/completions, OpenAI's.
const maxLegacyLogprobs = 5

// completions answers POST /v1/completions. A list of prompts is a choice
// per prompt: generated at once, or one after the other when streamed.
func (s *Server) completions(w http.ResponseWriter, r *http.Request) error {
	var in completionRequest
	if err := s.decode(w, r, &in, completionRefused); err != nil {
		return err
	}
	if in.MaxTokens == nil {
		n := int64(defaultCompletionTokens)
		in.MaxTokens = &n
	}
	req, aerr := samplerRequest(in.Model, in.MaxTokens, "max_tokens", in.sampler)
	if aerr != nil {
		return aerr
	}
	switch {
	case in.BestOf != nil && *in.BestOf != 1:
		return badParam("best_of", "best_of must be 1: rbee generates one choice per prompt, got %d", *in.BestOf)
	case in.Suffix != nil && *in.Suffix != "":
		return badParam("suffix", "suffix (text after the insertion) is not supported")
	case in.Logprobs != nil && (*in.Logprobs < 0 || *in.Logprobs > maxLegacyLogprobs):
		return badParam("logprobs", "logprobs must be from 0 to %d, got %d", maxLegacyLogprobs, *in.Logprobs)
	case in.Logprobs != nil && in.Echo:
		return badParam("echo", "echo with logprobs is not supported: rbee gives the log-probabilities of generated tokens only")
	}
	if in.Logprobs != nil {
		n := int(*in.Logprobs)
		req.Logprobs, req.TopLogprobs = true, &n
	}
	if aerr = formatOption(in.ResponseFormat, &req); aerr != nil {
		return aerr
	}
	prompts, aerr := promptTexts(in.Prompt)
	if aerr != nil {
		return aerr
	}
	reqs := make([]wire.InferenceRequest, len(prompts))
	for i, p := range prompts {
		reqs[i] = req
		reqs[i].Prompt = p
		if aerr = validate(reqs[i]); aerr != nil {
			return aerr
		}
	}

	c := &completionChunks{id: newID("cmpl-"), created: s.opt.Now().Unix(), model: in.Model,
		logprobs: make([]*legacyLogprobs, len(prompts))}
	if in.Echo {
		c.echo = prompts
	}
	for i := range c.logprobs {
		if req.Logprobs {
			c.logprobs[i] = &legacyLogprobs{offset: len(c.echoOf(i))}
		}
	}
	if in.Stream {
		return s.stream(w, r, in.Model, reqs, c, in.StreamOptions != nil && in.StreamOptions.IncludeUsage)
	}
	answers := make([]*answer, len(reqs))
	for i := range answers {
		answers[i] = newAnswer(false)
	}
	ends, err := s.collectAll(r.Context(), in.Model, reqs, answers)
	if err != nil {
		return err
	}
	out := Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: make([]CompletionChoice, len(reqs)), Usage: usage(addUsage(ends...))}
	for i, a := range answers {
		reason := finishReason(ends[i].StopReason)
		out.Choices[i] = CompletionChoice{Index: i, Text: c.echoOf(i) + a.text.String(), FinishReason: &reason}
		if l := c.logprobs[i]; l != nil {
			out.Choices[i].Logprobs = l.add(a.logprobs)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// completionChunks builds the events of a streamed completion: for each
// choice the text piece by piece (its prompt first, with echo), then its
// finish reason; then the usage when asked for.
type completionChunks struct {
	id       string
	created  int64
	model    string
	echo     []string
	logprobs []*legacyLogprobs // per choice; nil entries: not asked for
}

func (c *completionChunks) echoOf(choice int) string {
	if c.echo == nil {
		return ""
	}
	return c.echo[choice]
}

func (c *completionChunks) chunk(choice int, text string, finish *string) Completion {
	return Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []CompletionChoice{{Index: choice, Text: text, FinishReason: finish}}}
}

func (c *completionChunks) head(choice int) any {
	echo := c.echoOf(choice)
	if echo == "" {
		return nil
	}
	return c.chunk(choice, echo, nil)
}

func (c *completionChunks) event(choice int, e wire.Event) any {
	l := c.logprobs[choice]
	if e.T == "" && (l == nil || len(e.Logprobs) == 0) {
		return nil
	}
	ch := c.chunk(choice, e.T, nil)
	if l != nil {
		ch.Choices[0].Logprobs = l.add(e.Logprobs)
	}
	return ch
}

func (c *completionChunks) tail(choice int, reason string) any { return c.chunk(choice, "", &reason) }

func (c *completionChunks) usage(u *Usage) any {
	return Completion{ID: c.id, Object: "text_completion", Created: c.created, Model: c.model,
		Choices: []CompletionChoice{}, Usage: u}
}
