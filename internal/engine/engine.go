// Package engine is the interface between the worker and whatever runs the
// model. The llama package implements it with llama.cpp; the fake package
// implements it in pure Go so that everything above the engine can be tested
// with CGO_ENABLED=0.
package engine

import (
	"context"
	"errors"
)

// Token is a vocabulary id.
type Token = int32

// Sampling holds the sampler settings of one sequence. Temperature 0 is
// greedy decoding; zero values of the others switch them off.
type Sampling struct {
	Temperature       float32
	TopK              int32
	TopP              float32
	MinP              float32
	RepetitionPenalty float32
	PenaltyLastN      int32
	Seed              uint32
	// PresencePenalty and FrequencyPenalty are OpenAI's, over the last
	// PenaltyLastN generated tokens.
	PresencePenalty  float32
	FrequencyPenalty float32
	// LogitBias is added to the logits of its tokens; -100 or less bans a
	// token.
	LogitBias map[Token]float32
	// Grammar is a GBNF grammar (root rule root) the output must follow;
	// empty is none. Once it is complete only end-of-generation tokens are
	// allowed.
	Grammar string
	// Logprobs asks for the sampled token's log-probability, and
	// TopLogprobs (0 to MaxTopLogprobs) for the most likely tokens':
	// see Sequence's LastLogprobs.
	Logprobs    bool
	TopLogprobs int
}

// ErrContextFull is returned when a sequence has used its whole context, or
// when the engine found no room for it: either way the request is too long
// for this model's context, and the model stays usable.
var ErrContextFull = errors.New("context window is full")

// ErrModelFailed is wrapped by errors after which the loaded model can no
// longer be trusted (its context may hold half-evaluated state): every open
// sequence fails, and so does every later one, until the model is loaded
// again.
var ErrModelFailed = errors.New("the model failed and must be loaded again")

// Info describes a loaded model.
type Info struct {
	Path        string
	Description string // e.g. "llama 260K all F32"
	CtxSize     int    // tokens each sequence may hold
	CtxTrain    int    // context length the model was trained with
	VocabSize   int
	Params      uint64
	SizeBytes   uint64
	Device      string // "cpu", or the GPU the weights are on, e.g. "cuda:0"
	// On a GPU: its name, the layers on it (as llama.cpp's n_gpu_layers)
	// and the device memory the model took.
	DeviceName        string
	GPULayers         int
	DeviceMemoryBytes uint64
	// ChatTemplate is the GGUF's tokenizer.chat_template (Jinja), "" when
	// it has none; BOSText and EOSText are its BOS and EOS tokens' text,
	// as templates use them.
	ChatTemplate     string
	BOSText, EOSText string
}

// SpecialPiecer is implemented by models that can render a control token's
// text (Piece renders control tokens as nothing): tool-call formats mark
// calls with such tokens ([TOOL_CALLS], <|python_tag|>).
type SpecialPiecer interface {
	SpecialPiece(t Token) ([]byte, error)
}

// Logprobber is implemented by sequences that report the log-probabilities
// of their last sampled token, when Sampling.Logprobs asked for them.
type Logprobber interface {
	LastLogprobs() TokenLogprobs
}

// Model is a loaded model. Tokenize, Piece and IsEOG are safe for concurrent
// use; sequences are not shared between goroutines.
type Model interface {
	Info() Info
	// Tokenize turns text into tokens, adding the model's BOS token when its
	// metadata asks for one and parsing special-token text.
	Tokenize(text string) ([]Token, error)
	// Piece is the text bytes of one token. Bytes of one UTF-8 character may
	// be split across tokens. Control tokens have no text; a token outside
	// the vocabulary is an error, so that text is never silently lost.
	Piece(t Token) ([]byte, error)
	// IsEOG reports whether t ends generation.
	IsEOG(t Token) bool
	// ChatPrompt renders a conversation with the model's own chat template,
	// or with PlainChat when it has none, ready for Tokenize.
	ChatPrompt(msgs []ChatMessage) (string, error)
	// NewSequence starts an empty sequence with its own sampler.
	NewSequence(s Sampling) (Sequence, error)
	Close() error
}

// Sequence is one stream of tokens in the model's context.
type Sequence interface {
	// Prefill evaluates the prompt. It checks ctx between batches so that a
	// long prompt can be abandoned.
	Prefill(ctx context.Context, prompt []Token) error
	// Sample picks the next token from the last evaluated position.
	Sample() Token
	// Decode appends t and evaluates it, making the next Sample possible.
	Decode(t Token) error
	// Len is the number of tokens in the sequence.
	Len() int
	// Cached is how many of the first Prefill's prompt tokens were not
	// evaluated because the engine's prompt cache held them.
	Cached() int
	Close()
}

// CacheStats describe an engine's prompt cache: sequences whose KV cache
// outlived their request, in slots or saved to RAM, and how much of the
// prompts it served.
type CacheStats struct {
	Enabled bool
	// Sequences and Tokens count the cached sequences (idle slots and RAM).
	Sequences int
	Tokens    int
	// RAMBytes is the memory of the sequences saved to RAM, at most
	// BudgetBytes.
	RAMBytes    int64
	BudgetBytes int64
	// PromptTokens is every prompt token since the model loaded;
	// CachedTokens those the cache served.
	PromptTokens int64
	CachedTokens int64
}

// CacheReporter is implemented by models with a prompt cache.
type CacheReporter interface {
	CacheStats() CacheStats
}
