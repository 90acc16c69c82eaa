package testmodel

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rbee/rbee/internal/gguf"
)

// The scripted model is a llama-architecture model whose output is a reply
// chosen by the test, byte for byte (any bytes: newlines, JSON, UTF-8),
// followed by EOS. It answers
//
//   - replies[i], where i is the highest index whose marker ReplyMarker(i)
//     ("[reply:i]") appears anywhere in the prompt (the highest, not the
//     last), or
//   - replies[0] when the prompt holds no marker,
//
// whatever else the prompt says and however a chat template wrapped it, so
// one file serves a whole conversation: a tool round trip puts
// ReplyMarker(0) or nothing in the user's message (reply 0: the call) and
// ReplyMarker(1) in the tool's result (reply 1: the final answer), and the
// second request, which repeats the first message, still gets reply 1.
// Number replies in the order a conversation reaches them, and keep marker
// texts out of replies (a reply sent back as an assistant message would
// select itself). Greedy decoding gives the reply, and so does sampling at
// any usual temperature: the chosen token leads every other by a logit of
// about 40. ScriptedReply predicts the answer for a prompt.
//
// How: every byte of every reply is a token of its own (a "chain" token),
// so the same byte may have several ids, each with its own successor. A
// chain token is a byte-fallback token (type BYTE) whose text is "<0xXX>"
// plus a unique suffix: llama.cpp detokenizes it as the byte XX (it reads
// only the two hex digits) and never produces it from text, since
// SentencePiece merges only pieces it has seen grow from single characters,
// so prompts tokenize exactly as for the alphabet model. Markers are
// USER_DEFINED tokens, which llama.cpp matches in text before anything
// else, with or without special-token parsing.
//
// The weights are the alphabet model's with one attention head switched on.
// Embeddings are one-hot (the base tokens share one direction: they all
// have the same successor); output.weight maps a token's direction to the
// logit of its successor. The head's query is the same for every token and
// only markers have a key (BOS too, as a marker for reply 0, so that a
// reply is always selected), larger for a higher index (20 points of score
// per index), so every position attends to the highest marker before it and
// copies a boost of 3 into that marker's direction of the residual
// stream, which votes for the marker's reply. Base tokens embed with weight
// 1 and lose to the boost (1 < 3); chain tokens embed with weight 5 and
// beat it (5 > 3+1), so a reply, once started, runs to its end. An extra token in several replies has a successor in each: the head
// also adds 1 to the selected reply's own direction, which those successors
// read as well (5+1 > 5). WriteScripted checks every state for the margin.
// Rotary embedding is made negligible by a huge frequency base and by
// using only the head's slowest-turning dimension. Prompts must start with
// BOS (llama.cpp adds it: tokenizer.ggml.add_bos_token is true) and should
// not end with an extra token a reply holds (it would continue that reply).
const (
	ScriptedName = "rbee scripted test model"
	// MaxReplies is how many replies one file can hold: one per dimension
	// of the attention head's values.
	MaxReplies = scriptHeadDim
	// MaxScriptBytes bounds the replies' total length. The file grows with
	// its square (8 bytes per token per embedding dimension): 400 bytes of
	// replies make a 3.5 MB file written in about 20 ms, 1 KiB 14 MB, 2 KiB
	// 44 MB.
	MaxScriptBytes = 2048

	// ScriptedContext is llama.context_length (ExtraKVs may change it).
	ScriptedContext = 4096

	scriptHeadDim = 64
	scriptFF      = 64
	scriptScore   = 20 // attention score per marker index
	// scriptMargin is by how much the chosen token's logit leads every
	// other's at least (output_norm's weight scales them to it), so that
	// sampling at any usual temperature gives the same text as greedy
	// decoding.
	scriptMargin = 40
	// scriptRopeBase makes the slowest rotary pair turn by about 2e-9
	// radians per position.
	scriptRopeBase = 1e9

	scriptTypeUserDefined = 4 // LLAMA_TOKEN_TYPE_USER_DEFINED
)

// ScriptOptions adds to what WriteScripted writes.
type ScriptOptions struct {
	// Name is general.name; ScriptedName when empty.
	Name string
	// Specials are extra CONTROL tokens, like Llama 3's <|python_tag|> or
	// Mistral's [TOOL_CALLS]: llama.cpp reads them from a prompt only when
	// parsing special tokens, and writes their text only when asked for
	// special tokens (llama_token_to_piece with special set), as for a
	// real model. Added are extra USER_DEFINED tokens, like Qwen's
	// <tool_call>, always read and written as text. Both are tokens of
	// their own in prompts. Where a reply holds one's text the model emits
	// that token rather than the bytes, at most once per reply (a second
	// time is an error: one token cannot have two successors in a reply).
	// llama.cpp makes some texts end of generation by name (<|eom_id|>,
	// <|eot_id|>, <|im_end|>, ...): a reply may end on one of them.
	Specials, Added []string
	// ExtraKVs are written after the model's own metadata; one with the
	// key of a model key replaces it (for example
	// tokenizer.chat_template, or llama.context_length).
	ExtraKVs []gguf.WriteKV
}

// ReplyMarker is the text that selects reply i when it appears in a prompt.
func ReplyMarker(i int) string { return "[reply:" + strconv.Itoa(i) + "]" }

// ScriptedReply predicts the scripted model's greedy output for prompt: the
// reply of the highest marker in it, or replies[0]. Markers of indexes
// without a reply are plain text.
func ScriptedReply(replies []string, prompt string) string {
	best := 0
	for i := range replies {
		if strings.Contains(prompt, ReplyMarker(i)) {
			best = i
		}
	}
	if len(replies) == 0 {
		return ""
	}
	return replies[best]
}

// WriteScripted writes the scripted model for replies to path (atomically).
// The same replies and options give the same bytes. It fails for more than
// MaxReplies replies or MaxScriptBytes bytes, for an extra token that is
// empty or already a token, for one twice in a reply, and where extra
// tokens shared by replies would leave a successor ambiguous: it works
// out, for every last token and selected reply, that the right token wins.
func WriteScripted(path string, replies []string, opt ScriptOptions) error {
	s, err := newScript(replies, opt)
	if err != nil {
		return err
	}
	return gguf.WriteFile(path, s.kvs(opt), s.tensors())
}

// ScriptedFileSize is the size in bytes of the file WriteScripted writes.
func ScriptedFileSize(replies []string, opt ScriptOptions) (int64, error) {
	s, err := newScript(replies, opt)
	if err != nil {
		return 0, err
	}
	return gguf.EncodedSize(s.kvs(opt), s.tensors())
}

// ScriptedVocab returns the scripted model's tokens, scores and token types:
// the alphabet model's, then one marker per reply, then opt.Specials and
// opt.Added, then one "chain" token per byte of reply 0, reply 1, and so on
// (text written as an extra token excepted).
func ScriptedVocab(replies []string, opt ScriptOptions) (tokens []string, scores []float32, types []int32, err error) {
	s, err := newScript(replies, opt)
	if err != nil {
		return nil, nil, nil, err
	}
	return s.tokens, s.scores, s.types, nil
}

// Weights of the scripted model, in units of a one-hot direction.
const (
	wBase  = 1 // a base token's or a marker's embedding
	wChain = 5 // a chain or extra token's embedding
	wBoost = 3 // added to the selected marker's direction
	wReply = 1 // added to the selected reply's own direction
)

// script is the model's layout. Residual-stream directions: 0 for every
// base token but BOS, 1 for BOS, then one per marker, one per reply (the
// "reply is selected" direction that extra tokens' successors read),
// one per extra token and one per chain token.
type script struct {
	replies          []string
	nMarkers, nExtra int
	nVocab, nEmbd    int
	tokens           []string
	scores           []float32
	types            []int32
	chains           [][]int // each reply's tokens
	rows             []map[int]float32
	minMargin        float64 // the smallest lead, over the residual's norm
}

func (s *script) marker(i int) int { return baseVocabSize + i }

func (s *script) dir(id int) int {
	switch {
	case id == TokenBOS:
		return 1
	case id < baseVocabSize:
		return 0
	case id < baseVocabSize+s.nMarkers:
		return 2 + id - baseVocabSize
	}
	return 2 + s.nMarkers + id - baseVocabSize
}

func (s *script) replyDir(i int) int { return 2 + s.nMarkers + i }

func (s *script) embedWeight(id int) float32 {
	if id >= baseVocabSize+s.nMarkers {
		return wChain
	}
	return wBase
}

func (s *script) first(i int) int {
	if len(s.chains[i]) == 0 {
		return TokenEOS
	}
	return s.chains[i][0]
}

func newScript(replies []string, opt ScriptOptions) (*script, error) {
	if len(replies) == 0 || len(replies) > MaxReplies {
		return nil, fmt.Errorf("testmodel: %d replies, want 1 to %d", len(replies), MaxReplies)
	}
	total := 0
	for _, r := range replies {
		total += len(r)
	}
	if total > MaxScriptBytes {
		return nil, fmt.Errorf("testmodel: replies of %d bytes in all, more than %d", total, MaxScriptBytes)
	}
	s := &script{replies: replies, nMarkers: len(replies), nExtra: len(opt.Specials) + len(opt.Added)}
	s.tokens, s.scores, s.types = vocab(baseVocabSize)
	add := func(text string, typ int32) {
		s.tokens = append(s.tokens, text)
		s.scores = append(s.scores, 0)
		s.types = append(s.types, typ)
	}
	for i := range replies {
		add(ReplyMarker(i), scriptTypeUserDefined)
	}
	extra := map[string]int{}
	for i, text := range slices.Concat(opt.Specials, opt.Added) {
		if text == "" || slices.Contains(s.tokens, text) {
			return nil, fmt.Errorf("testmodel: extra token %q is empty or taken", text)
		}
		extra[text] = len(s.tokens)
		typ := int32(scriptTypeUserDefined)
		if i < len(opt.Specials) {
			typ = typeControl
		}
		add(text, typ)
	}
	// Longest first, as llama.cpp matches them.
	texts := slices.SortedFunc(maps.Keys(extra), func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	const hex = "0123456789ABCDEF"
	s.chains = make([][]int, len(replies))
	for i, r := range replies {
		for j := 0; j < len(r); {
			if k := slices.IndexFunc(texts, func(t string) bool { return strings.HasPrefix(r[j:], t) }); k >= 0 {
				if slices.Contains(s.chains[i], extra[texts[k]]) {
					return nil, fmt.Errorf("testmodel: reply %d holds %q twice", i, texts[k])
				}
				s.chains[i] = append(s.chains[i], extra[texts[k]])
				j += len(texts[k])
				continue
			}
			s.chains[i] = append(s.chains[i], len(s.tokens))
			add("<0x"+string(hex[r[j]>>4])+string(hex[r[j]&15])+">#"+strconv.Itoa(len(s.tokens)), typeByte)
			j++
		}
	}
	s.nVocab = len(s.tokens)
	// llama.cpp aborts on a text twice; an extra token could look like a
	// chain token.
	seen := make(map[string]bool, s.nVocab)
	for _, tok := range s.tokens {
		if seen[tok] {
			return nil, fmt.Errorf("testmodel: extra token %q is taken", tok)
		}
		seen[tok] = true
	}
	// The attention head reads one direction per reply; 64 keeps rows
	// aligned.
	s.nEmbd = (max(s.dir(s.nVocab-1)+1, s.replyDir(len(replies))) + 63) / 64 * 64
	s.outputRows()
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// outputRows sets output.weight: row j reads the direction of every token
// whose successor is j, and for an extra token that more than one reply
// holds (so it has several successors), also the reply's own direction.
func (s *script) outputRows() {
	holders := map[int]int{}
	for _, chain := range s.chains {
		for _, id := range chain {
			holders[id]++
		}
	}
	s.rows = make([]map[int]float32, s.nVocab)
	set := func(j, d int, w float32) {
		if s.rows[j] == nil {
			s.rows[j] = map[int]float32{}
		}
		s.rows[j][d] = w
	}
	set(s.first(0), s.dir(TokenUnk), 1)
	set(s.first(0), s.dir(TokenBOS), 1)
	for i, chain := range s.chains {
		set(s.first(i), s.dir(s.marker(i)), 1)
		for k, id := range chain {
			next := TokenEOS
			if k+1 < len(chain) {
				next = chain[k+1]
			}
			set(next, s.dir(id), 1)
			if holders[id] > 1 {
				set(next, s.replyDir(i), 1)
			}
		}
	}
}

// check works out, for every state the model can be in, that the expected
// token wins: the last token being a base token, BOS, a marker or an extra
// token no reply holds (each with any reply selected, and the reply's first
// token expected), or a token of the selected reply's chain (its successor
// expected). It records the smallest lead, relative to the residual's norm.
func (s *script) check() error {
	cols := make([][]struct {
		row int
		w   float32
	}, s.nEmbd)
	for j, row := range s.rows {
		for d, w := range row {
			cols[d] = append(cols[d], struct {
				row int
				w   float32
			}{j, w})
		}
	}
	s.minMargin = math.Inf(1)
	try := func(last, reply, want int) error {
		x := map[int]float64{s.dir(last): float64(s.embedWeight(last))}
		x[s.dir(s.marker(reply))] += wBoost
		x[s.replyDir(reply)] += wReply
		logits := map[int]float64{}
		var norm float64
		for d, v := range x {
			norm += v * v
			for _, c := range cols[d] {
				logits[c.row] += v * float64(c.w)
			}
		}
		second := 0.0 // some row is always untouched
		for j, l := range logits {
			if j != want {
				second = max(second, l)
			}
		}
		lead := (logits[want] - second) / math.Sqrt(norm)
		if lead < 0.1 {
			return fmt.Errorf("testmodel: with reply %d selected, token %d (%q) is followed by token %d (%q) by too little or not at all: the replies share extra tokens in a way this model cannot tell apart",
				reply, last, s.tokens[last], want, s.tokens[want])
		}
		s.minMargin = min(s.minMargin, lead)
		return nil
	}
	inReply := map[int]bool{}
	for _, chain := range s.chains {
		for _, id := range chain {
			inReply[id] = true
		}
	}
	for reply, chain := range s.chains {
		lasts := []int{TokenUnk, TokenBOS}
		for i := range reply + 1 {
			lasts = append(lasts, s.marker(i))
		}
		for id := baseVocabSize + s.nMarkers; id < baseVocabSize+s.nMarkers+s.nExtra; id++ {
			if !inReply[id] {
				lasts = append(lasts, id)
			}
		}
		for _, last := range lasts {
			if err := try(last, reply, s.first(reply)); err != nil {
				return err
			}
		}
		for k, id := range chain {
			next := TokenEOS
			if k+1 < len(chain) {
				next = chain[k+1]
			}
			if err := try(id, reply, next); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *script) kvs(opt ScriptOptions) []gguf.WriteKV {
	name := opt.Name
	if name == "" {
		name = ScriptedName
	}
	kvs := []gguf.WriteKV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "general.name", Value: name},
		{Key: "general.alignment", Value: uint32(32)},
		{Key: "general.file_type", Value: uint32(0)}, // LLAMA_FTYPE_ALL_F32
		{Key: "llama.context_length", Value: uint32(ScriptedContext)},
		{Key: "llama.embedding_length", Value: uint32(s.nEmbd)},
		{Key: "llama.block_count", Value: uint32(1)},
		{Key: "llama.feed_forward_length", Value: uint32(scriptFF)},
		{Key: "llama.attention.head_count", Value: uint32(1)},
		{Key: "llama.attention.head_count_kv", Value: uint32(1)},
		{Key: "llama.attention.key_length", Value: uint32(scriptHeadDim)},
		{Key: "llama.attention.value_length", Value: uint32(scriptHeadDim)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: float32(1e-5)},
		{Key: "llama.rope.dimension_count", Value: uint32(scriptHeadDim)},
		{Key: "llama.rope.freq_base", Value: float32(scriptRopeBase)},
		{Key: "llama.vocab_size", Value: uint32(s.nVocab)},
	}
	for _, kv := range vocabKVs(baseVocabSize) {
		switch kv.Key {
		case "tokenizer.ggml.tokens":
			kv.Value = s.tokens
		case "tokenizer.ggml.scores":
			kv.Value = s.scores
		case "tokenizer.ggml.token_type":
			kv.Value = s.types
		}
		kvs = append(kvs, kv)
	}
	for _, extra := range opt.ExtraKVs {
		replaced := false
		for i := range kvs {
			if kvs[i].Key == extra.Key {
				kvs[i], replaced = extra, true
			}
		}
		if !replaced {
			kvs = append(kvs, extra)
		}
	}
	return kvs
}

// sharpen is output_norm's weight: RMSNorm scales the residual to norm
// sqrt(nEmbd), and this scales the smallest lead check found to
// scriptMargin.
func (s *script) sharpen() float32 {
	return float32(scriptMargin / s.minMargin / math.Sqrt(float64(s.nEmbd)))
}

func (s *script) tensors() []gguf.WriteTensor {
	e, v, hd, ff := s.nEmbd, s.nVocab, scriptHeadDim, scriptFF
	t := func(name string, dims []uint64, write func(io.Writer) error) gguf.WriteTensor {
		return gguf.WriteTensor{Name: name, Type: gguf.TypeF32, Dims: dims, Write: write}
	}
	// The attention input is RMS-normalized: a one-hot direction of any
	// weight becomes sqrt(e), which these weights divide back out.
	unit := float32(1 / math.Sqrt(float64(e)))
	// The query and the keys live in the head's last dimension, the one
	// rotary embedding turns slowest. BOS is a marker for reply 0, so that
	// a reply is always selected.
	const qk = scriptHeadDim - 1
	keyed := func(h int) []int { // the directions head dimension h reads
		if h == 0 {
			return []int{s.dir(TokenBOS), s.dir(s.marker(0))}
		}
		return []int{s.dir(s.marker(h))}
	}
	return []gguf.WriteTensor{
		t("token_embd.weight", []uint64{uint64(e), uint64(v)}, f32Rows(e, v, func(id int, row []float32) {
			row[s.dir(id)] = s.embedWeight(id)
		})),
		t("output_norm.weight", []uint64{uint64(e)}, f32Const(e, 1, s.sharpen())),
		t("output.weight", []uint64{uint64(e), uint64(v)}, f32Rows(e, v, func(j int, row []float32) {
			for d, w := range s.rows[j] {
				row[d] = w
			}
		})),
		t("blk.0.attn_norm.weight", []uint64{uint64(e)}, f32Const(e, 1, 1)),
		t("blk.0.attn_q.weight", []uint64{uint64(e), uint64(hd)}, f32Rows(e, hd, func(r int, row []float32) {
			if r == qk {
				for d := range row {
					row[d] = unit
				}
			}
		})),
		t("blk.0.attn_k.weight", []uint64{uint64(e), uint64(hd)}, f32Rows(e, hd, func(r int, row []float32) {
			if r == qk {
				// Scores are divided by sqrt(head dim) before the softmax.
				for i := range s.replies {
					for _, d := range keyed(i) {
						row[d] = unit * scriptScore * float32(i+1) * 8
					}
				}
			}
		})),
		t("blk.0.attn_v.weight", []uint64{uint64(e), uint64(hd)}, f32Rows(e, hd, func(h int, row []float32) {
			if h < len(s.replies) {
				for _, d := range keyed(h) {
					row[d] = unit
				}
			}
		})),
		t("blk.0.attn_output.weight", []uint64{uint64(hd), uint64(e)}, f32Rows(hd, e, func(d int, row []float32) {
			for i := range s.replies {
				switch d {
				case s.dir(s.marker(i)):
					row[i] = wBoost
				case s.replyDir(i):
					row[i] = wReply
				}
			}
		})),
		t("blk.0.ffn_norm.weight", []uint64{uint64(e)}, f32Const(e, 1, 1)),
		t("blk.0.ffn_gate.weight", []uint64{uint64(e), uint64(ff)}, f32Rows(e, ff, nil)),
		t("blk.0.ffn_down.weight", []uint64{uint64(ff), uint64(e)}, f32Rows(ff, e, nil)),
		t("blk.0.ffn_up.weight", []uint64{uint64(e), uint64(ff)}, f32Rows(e, ff, nil)),
	}
}
