// Package testmodel writes GGUF models for tests and benchmarks, so that
// neither needs a download: a tiny "alphabet" model whose greedy output is
// known exactly, and random-weight models with the shapes of real ones for
// load and speed measurements.
package testmodel

import (
	"strconv"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/gguf"
)

// Token ids shared by every model this package writes. The layout is
// SentencePiece's ("llama" tokenizer in llama.cpp): three specials, the 256
// byte-fallback tokens, then one token per printable ASCII character.
const (
	TokenUnk = 0
	TokenBOS = 1
	TokenEOS = 2

	firstByteToken = 3                    // <0x00>
	spaceToken     = firstByteToken + 256 // "▁", then 0x21..0x7E in order
	baseVocabSize  = spaceToken + 0x7F - 0x20
)

// Token types as llama.cpp numbers them (llama_token_type).
const (
	typeNormal  = 1
	typeUnknown = 2
	typeControl = 3
	typeByte    = 6
)

// spaceMark is how SentencePiece writes a space inside a token.
const spaceMark = "▁"

// ByteToken is the id of the byte-fallback token <0xXX> for b.
func ByteToken(b byte) int { return firstByteToken + int(b) }

// CharToken is the id of the token for a printable ASCII character
// (0x20..0x7E, space being "▁"), or -1 for any other rune.
func CharToken(r rune) int {
	if r < 0x20 || r > 0x7E {
		return -1
	}
	return spaceToken + int(r-0x20)
}

// vocab returns n tokens: the base layout, then filler pieces "▁w<id>" that
// are all distinct and can never be produced by merging (no token is a
// prefix of them), so they do not change how text tokenizes.
func vocab(n int) (tokens []string, scores []float32, types []int32) {
	tokens = make([]string, 0, n)
	scores = make([]float32, 0, n)
	types = make([]int32, 0, n)
	add := func(s string, score float32, typ int32) {
		tokens = append(tokens, s)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, typeUnknown)
	add("<s>", 0, typeControl)
	add("</s>", 0, typeControl)
	const hex = "0123456789ABCDEF"
	for b := 0; b < 256; b++ {
		// Bytes score far below everything else so SentencePiece only
		// falls back to them when no character token fits.
		add("<0x"+string(hex[b>>4])+string(hex[b&15])+">", -1000, typeByte)
	}
	add(spaceMark, 0, typeNormal)
	for c := byte(0x21); c <= 0x7E; c++ {
		add(string(rune(c)), 0, typeNormal)
	}
	for id := len(tokens); id < n; id++ {
		add(spaceMark+"w"+strconv.Itoa(id), -float32(id), typeNormal)
	}
	return tokens, scores, types
}

func vocabKVs(n int) []gguf.WriteKV {
	tokens, scores, types := vocab(n)
	return []gguf.WriteKV{
		{Key: "tokenizer.ggml.model", Value: "llama"},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.scores", Value: scores},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.bos_token_id", Value: uint32(TokenBOS)},
		{Key: "tokenizer.ggml.eos_token_id", Value: uint32(TokenEOS)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: uint32(TokenUnk)},
		{Key: "tokenizer.ggml.add_bos_token", Value: true},
		{Key: "tokenizer.ggml.add_eos_token", Value: false},
		{Key: "tokenizer.ggml.add_space_prefix", Value: false},
	}
}

// Tokenize returns the ids llama.cpp's SentencePiece tokenizer gives text
// for these vocabularies (without BOS, without parsing special tokens):
// every printable ASCII character is its own token (space as "▁"), and
// everything else falls back to one byte token per UTF-8 byte. No merges
// apply, because no token in the vocabulary spans two characters.
func Tokenize(text string) []int {
	var ids []int
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRuneInString(text[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			ids = append(ids, ByteToken(text[i]))
		case text[i:i+n] == spaceMark:
			ids = append(ids, spaceToken)
		case CharToken(r) >= 0:
			ids = append(ids, CharToken(r))
		default:
			for j := i; j < i+n; j++ {
				ids = append(ids, ByteToken(text[j]))
			}
		}
		i += n
	}
	return ids
}

// Piece returns the bytes token id stands for when detokenized: the
// character, a space for "▁", one raw byte for a byte token, and nothing for
// the specials and for ids outside the base vocabulary.
func Piece(id int) string {
	switch {
	case id >= firstByteToken && id < spaceToken:
		return string([]byte{byte(id - firstByteToken)})
	case id >= spaceToken && id < baseVocabSize:
		return string(rune(0x20 + id - spaceToken))
	}
	return ""
}
