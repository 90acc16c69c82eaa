package engine

import "fmt"

// MaxTopLogprobs is the most alternatives Sampling.TopLogprobs may ask
// for, as in OpenAI's API.
const MaxTopLogprobs = 20

// TokenLogprob is a token and its log-probability under the model's
// distribution (the log-softmax of the raw logits, before temperature,
// penalties, bias or grammar).
type TokenLogprob struct {
	Token   Token
	Logprob float32
}

// TokenLogprobs are the log-probabilities of one sampled token: the
// chosen one and the most likely ones, best first.
type TokenLogprobs struct {
	Chosen TokenLogprob
	Top    []TokenLogprob
}

// SamplingError is a Sampling setting the engine refuses (an invalid
// grammar, a logit_bias token outside the vocabulary): the request's
// fault, a 400 naming Field.
type SamplingError struct {
	Field string // "grammar", "logit_bias", "top_logprobs"
	Msg   string
}

func (e *SamplingError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Msg) }
