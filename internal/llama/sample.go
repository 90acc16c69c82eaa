package llama

/*
#cgo LDFLAGS: -lm
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "bridge.h"

static void rbee_swap(llama_token_data *a, llama_token_data *b) {
	llama_token_data t = *a;
	*a = *b;
	*b = t;
}

static void rbee_fill(llama_token_data *cur, const float *logits, int n) {
	for (int i = 0; i < n; i++) {
		cur[i].id = i;
		cur[i].logit = logits[i];
		cur[i].p = 0;
	}
}

// rbee_utf8 is where a byte stream stands in UTF-8: how many
// continuation bytes it still needs, and the range of the next one.
typedef struct { int remain; unsigned char lo, hi; } rbee_utf8;

// rbee_utf8_step advances s over n bytes; 0 if they make the stream
// invalid UTF-8 (overlong forms, surrogates and code points past U+10FFFF
// included), which the grammar, working on decoded code points, misses.
static int rbee_utf8_step(rbee_utf8 *s, const unsigned char *p, int n) {
	for (int i = 0; i < n; i++) {
		unsigned char b = p[i];
		if (s->remain > 0) {
			if (b < s->lo || b > s->hi) return 0;
			s->remain--;
			s->lo = 0x80;
			s->hi = 0xBF;
			continue;
		}
		if (b < 0x80) continue;
		s->lo = 0x80;
		s->hi = 0xBF;
		if (b >= 0xC2 && b <= 0xDF) s->remain = 1;
		else if (b == 0xE0) { s->remain = 2; s->lo = 0xA0; }
		else if (b == 0xED) { s->remain = 2; s->hi = 0x9F; }
		else if (b >= 0xE1 && b <= 0xEF) s->remain = 2;
		else if (b == 0xF0) { s->remain = 3; s->lo = 0x90; }
		else if (b >= 0xF1 && b <= 0xF3) s->remain = 3;
		else if (b == 0xF4) { s->remain = 3; s->hi = 0x8F; }
		else return 0;
	}
	return 1;
}

// rbee_utf8_ok reports whether token id keeps the output valid UTF-8
// after state s, and writes the state after it to out.
static int rbee_utf8_ok(const struct llama_vocab *vocab, rbee_utf8 s, llama_token id, rbee_utf8 *out) {
	char buf[256];
	int n = llama_token_to_piece(vocab, id, buf, sizeof buf, 0, false);
	if (n < 0) return 0;
	if (!rbee_utf8_step(&s, (const unsigned char *)buf, n)) return 0;
	if (out) *out = s;
	return 1;
}

static int rbee_allows(struct llama_sampler *grammar, const struct llama_vocab *vocab, rbee_utf8 *u, llama_token id) {
	if (!rbee_utf8_ok(vocab, *u, id, NULL)) return 0;
	llama_token_data one = { id, 1.0f, 0.0f };
	llama_token_data_array single = { &one, 1, -1, false };
	llama_sampler_apply(grammar, &single);
	return !isinf(one.logit);
}

// rbee_filter applies the grammar (and UTF-8) to d[0..n) and reports
// whether any token is left.
static int rbee_filter(struct llama_sampler *grammar, const struct llama_vocab *vocab, rbee_utf8 *u,
		llama_token_data *d, size_t n) {
	llama_token_data_array a = { d, n, -1, false };
	llama_sampler_apply(grammar, &a);
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (isinf(d[i].logit)) continue;
		if (!rbee_utf8_ok(vocab, *u, d[i].id, NULL)) d[i].logit = -INFINITY;
		else any = 1;
	}
	return any;
}


// rbee_select moves the k largest logits of d[0..n) to its front (in no
// order): quickselect, linear on average.
static void rbee_select(llama_token_data *d, size_t n, size_t k) {
	if (k >= n) return;
	size_t lo = 0, hi = n;
	unsigned int r = 2463534242u;
	while (hi - lo > 1) {
		r ^= r << 13; r ^= r >> 17; r ^= r << 5;
		rbee_swap(&d[lo + r % (hi - lo)], &d[hi - 1]);
		float pivot = d[hi - 1].logit;
		size_t store = lo;
		for (size_t i = lo; i + 1 < hi; i++) {
			if (d[i].logit > pivot) rbee_swap(&d[i], &d[store++]);
		}
		rbee_swap(&d[store], &d[hi - 1]);
		if (store == k || store + 1 == k) return;
		if (store > k) hi = store;
		else lo = store + 1;
	}
}

// rbee_prefix holds, for a grammar sampler, the first two bytes of every
// token's piece and a token for each single byte: a token can only be
// allowed when the grammar allows its first byte, and its first two, so
// probing the bytes prunes the vocabulary before the grammar runs over it.
typedef struct {
	unsigned short *first2; // b0 << 8 | b1
	unsigned char *len;     // piece length, at most 2; 255: unknown
	unsigned char *eog;
	llama_token byte_tok[256]; // -1: none
	unsigned char ok1[256];
	unsigned char deep[256];
	unsigned char ok2[256][256];
} rbee_prefix;

static rbee_prefix *rbee_prefix_new(const struct llama_vocab *vocab, int n) {
	rbee_prefix *p = calloc(1, sizeof *p);
	p->first2 = malloc(n * sizeof *p->first2);
	p->len = malloc(n);
	p->eog = malloc(n);
	for (int b = 0; b < 256; b++) p->byte_tok[b] = -1;
	char buf[256];
	for (int id = 0; id < n; id++) {
		int l = llama_token_to_piece(vocab, id, buf, sizeof buf, 0, false);
		p->eog[id] = llama_vocab_is_eog(vocab, id);
		if (l < 0) {
			p->len[id] = 255;
			p->first2[id] = 0;
			continue;
		}
		p->len[id] = l > 2 ? 2 : l;
		p->first2[id] = (l >= 1 ? (unsigned char)buf[0] << 8 : 0) | (l >= 2 ? (unsigned char)buf[1] : 0);
		if (l == 1 && p->byte_tok[(unsigned char)buf[0]] < 0) p->byte_tok[(unsigned char)buf[0]] = id;
	}
	return p;
}

static void rbee_prefix_free(rbee_prefix *p) {
	if (!p) return;
	free(p->first2);
	free(p->len);
	free(p->eog);
	free(p);
}

static int rbee_grammar_allows(struct llama_sampler *g, llama_token id) {
	llama_token_data one = { id, 1.0f, 0.0f };
	llama_token_data_array single = { &one, 1, -1, false };
	llama_sampler_apply(g, &single);
	return !isinf(one.logit);
}

// rbee_prune moves the candidates of d whose first byte, and first two
// bytes, the grammar allows to its front and returns how many there are.
// Second bytes are probed (on a copy of the grammar that took the first)
// only after first bytes that many candidates share, as the space does at
// the structural points of JSON.
static size_t rbee_prune(rbee_prefix *p, struct llama_sampler *grammar, llama_token_data *d, size_t n) {
	for (int b = 0; b < 256; b++) {
		p->ok1[b] = p->byte_tok[b] < 0 || rbee_grammar_allows(grammar, p->byte_tok[b]);
	}
	size_t count[256] = {0};
	size_t keep = 0;
	for (size_t i = 0; i < n; i++) {
		llama_token id = d[i].id;
		int l = p->len[id];
		unsigned b0 = p->first2[id] >> 8;
		if (p->eog[id] || l == 255 || (l >= 1 && p->ok1[b0])) {
			if (l == 2) count[b0]++;
			rbee_swap(&d[i], &d[keep++]);
		}
	}
	int any = 0;
	for (int b = 0; b < 256; b++) {
		p->deep[b] = p->ok1[b] && count[b] > 256 && p->byte_tok[b] >= 0;
		if (!p->deep[b]) continue;
		any = 1;
		struct llama_sampler *g = llama_sampler_clone(grammar);
		llama_sampler_accept(g, p->byte_tok[b]);
		for (int b2 = 0; b2 < 256; b2++) {
			p->ok2[b][b2] = p->byte_tok[b2] < 0 || rbee_grammar_allows(g, p->byte_tok[b2]);
		}
		llama_sampler_free(g);
	}
	if (!any) return keep;
	size_t keep2 = 0;
	for (size_t i = 0; i < keep; i++) {
		llama_token id = d[i].id;
		unsigned b0 = p->first2[id] >> 8, b1 = p->first2[id] & 0xFF;
		if (p->len[id] != 2 || p->eog[id] || !p->deep[b0] || p->ok2[b0][b1]) rbee_swap(&d[i], &d[keep2++]);
	}
	return keep2;
}

// rbee_sample samples as llama.cpp's common/sampling.cpp does with a
// grammar: the chain alone first (pre, then pick), then the grammar
// checks only the chosen token, since a model mostly picks an allowed
// token. When it refuses, common/sampling.cpp runs the grammar over the
// whole vocabulary, which on 150k tokens costs more than a decode step.
// Here the candidates are first pruned to those whose first byte, and
// first two bytes, the grammar allows (rbee_prefix: a few hundred probes
// of single-byte tokens), then the grammar runs over the likeliest
// survivors, 512, then 8 times more, until some are allowed, and the pick
// chooses among those. Greedy decoding gets exactly the likeliest allowed
// token; with a temperature, allowed tokens less likely than all the
// examined ones are left out, like a top-k (at structural points of JSON
// the survivors are few and all are examined). Only when the chain's own
// truncation (top-k, top-p, min-p) left nothing allowed does the grammar
// filter the whole vocabulary first. With a grammar the output also stays
// valid UTF-8 (u is its state). *dead is set when nothing is allowed at
// all; then nothing is accepted.
static llama_token rbee_sample(struct llama_context *ctx, int idx, struct llama_sampler *pre,
		struct llama_sampler *pick, struct llama_sampler *grammar, const struct llama_vocab *vocab,
		rbee_prefix **prefix, rbee_utf8 *u, llama_token_data *cur, int n, int *dead) {
	const float *logits = llama_get_logits_ith(ctx, idx);
	rbee_fill(cur, logits, n);
	llama_token_data_array arr = { cur, (size_t)n, -1, false };
	llama_sampler_apply(pre, &arr);
	llama_sampler_apply(pick, &arr);
	llama_token id = arr.data[arr.selected].id;
	if (grammar && !rbee_allows(grammar, vocab, u, id)) {
		rbee_fill(cur, logits, n);
		arr = (llama_token_data_array){ cur, (size_t)n, -1, false };
		llama_sampler_apply(pre, &arr);
		llama_token_data *d = arr.data;
		if (!*prefix) *prefix = rbee_prefix_new(vocab, n);
		size_t size = rbee_prune(*prefix, grammar, d, arr.size), done = 0, k = 512;
		int any = 0;
		while (done < size && !any) {
			if (k > size - done) k = size - done;
			rbee_select(d + done, size - done, k);
			any = rbee_filter(grammar, vocab, u, d + done, k);
			done += k;
			k *= 8;
		}
		if (any) {
			arr = (llama_token_data_array){ d, done, -1, false };
			llama_sampler_apply(pick, &arr);
		} else {
			rbee_fill(cur, logits, n);
			arr = (llama_token_data_array){ cur, (size_t)n, -1, false };
			any = rbee_filter(grammar, vocab, u, cur, n);
			if (any) {
				llama_sampler_apply(pre, &arr);
				llama_sampler_apply(pick, &arr);
			}
		}
		if (any) id = arr.data[arr.selected].id;
		// Accepting a token the grammar refuses aborts the process:
		// check again (a bias of -100 may have banned all it allows).
		if (!any || !rbee_allows(grammar, vocab, u, id)) {
			*dead = 1;
			return id;
		}
	}
	if (grammar) {
		rbee_utf8_ok(vocab, *u, id, u);
		llama_sampler_accept(grammar, id);
	}
	llama_sampler_accept(pre, id);
	llama_sampler_accept(pick, id);
	return id;
}

// rbee_logprobs writes the log-softmax of the raw logits for the chosen
// token and the k best ones (best first; ties by lower id).
static float rbee_logprobs(struct llama_context *ctx, int idx, int n, llama_token chosen, int k,
		llama_token *top_ids, float *top_lps) {
	const float *logits = llama_get_logits_ith(ctx, idx);
	float mx = -INFINITY;
	for (int i = 0; i < n; i++) {
		if (logits[i] > mx) mx = logits[i];
	}
	double sum = 0;
	for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
	float lse = mx + (float)log(sum);
	for (int j = 0; j < k; j++) {
		top_ids[j] = -1;
		top_lps[j] = -INFINITY;
	}
	for (int i = 0; i < n && k > 0; i++) {
		float v = logits[i];
		if (top_ids[k-1] >= 0 && v <= top_lps[k-1]) continue;
		int j = k - 1;
		while (j > 0 && (top_ids[j-1] < 0 || v > top_lps[j-1])) {
			top_ids[j] = top_ids[j-1];
			top_lps[j] = top_lps[j-1];
			j--;
		}
		top_ids[j] = i;
		top_lps[j] = v;
	}
	for (int j = 0; j < k; j++) top_lps[j] -= lse;
	return logits[chosen] - lse;
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/rbee/rbee/internal/engine"
)

// sampler is one sequence's sampling state.
type sampler struct {
	pre     *C.struct_llama_sampler // bias, penalties, truncation, temperature
	pick    *C.struct_llama_sampler // greedy or dist
	grammar *C.struct_llama_sampler // nil without a grammar
	cur     *C.llama_token_data     // n candidates, reused every token
	n       int
	eog     engine.Token   // what a dead grammar ends with
	dead    bool           // the grammar allowed no token: only eog from now on
	utf8    C.rbee_utf8    // the output's UTF-8 state, under a grammar
	prefix  *C.rbee_prefix // made at the grammar's first refusal
	vocab   *C.struct_llama_vocab
	top     int  // TopLogprobs
	lp      bool // Logprobs
	last    engine.TokenLogprobs
	// keep makes sample copy the raw logits into logits, for tests.
	keep   bool
	logits []float32
}

// newSampler builds the sampler of a sequence of m. Settings the request
// got wrong (a grammar llama.cpp cannot parse, a logit_bias token outside
// the vocabulary) are *engine.SamplingError.
func newSampler(m *Model, s engine.Sampling) (*sampler, error) {
	n := int(C.llama_vocab_n_tokens(m.vocab))
	if s.TopLogprobs < 0 || s.TopLogprobs > engine.MaxTopLogprobs {
		return nil, &engine.SamplingError{Field: "top_logprobs", Msg: fmt.Sprintf("%d is outside 0..%d", s.TopLogprobs, engine.MaxTopLogprobs)}
	}
	for t := range s.LogitBias {
		if t < 0 || int(t) >= n {
			return nil, &engine.SamplingError{Field: "logit_bias", Msg: fmt.Sprintf("token %d is outside the vocabulary (%d tokens)", t, n)}
		}
	}
	p := &sampler{vocab: m.vocab, n: n, top: s.TopLogprobs, lp: s.Logprobs || s.TopLogprobs > 0}
	p.eog = engine.Token(C.llama_vocab_eos(m.vocab))
	if p.eog < 0 {
		p.eog = engine.Token(C.llama_vocab_eot(m.vocab))
	}
	if s.Grammar != "" {
		gs := C.CString(s.Grammar)
		root := C.CString("root")
		p.grammar = C.llama_sampler_init_grammar(m.vocab, gs, root)
		C.free(unsafe.Pointer(gs))
		C.free(unsafe.Pointer(root))
		if p.grammar == nil {
			return nil, &engine.SamplingError{Field: "grammar", Msg: "llama.cpp cannot parse it (see the worker's log)"}
		}
	}
	if s.PenaltyLastN < 0 {
		// As in llama.cpp's tools: -1 is the whole context.
		s.PenaltyLastN = int32(m.info.CtxSize)
	}
	p.pre, p.pick = newChain(s, n)
	p.cur = (*C.llama_token_data)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.llama_token_data{}))))
	return p, nil
}

func (p *sampler) free() {
	C.llama_sampler_free(p.pre)
	C.llama_sampler_free(p.pick)
	if p.grammar != nil {
		C.llama_sampler_free(p.grammar)
	}
	C.rbee_prefix_free(p.prefix)
	C.free(unsafe.Pointer(p.cur))
}

// newChain is llama.cpp's usual order: bias, penalties, truncation,
// temperature (pre), then the pick, apart so that a grammar can come
// between them.
func newChain(s engine.Sampling, nVocab int) (pre, pick *C.struct_llama_sampler) {
	chain := C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
	add := func(x *C.struct_llama_sampler) { C.llama_sampler_chain_add(chain, x) }
	if len(s.LogitBias) > 0 {
		bias := make([]C.llama_logit_bias, 0, len(s.LogitBias))
		for t, b := range s.LogitBias {
			v := C.float(b)
			if b <= -100 {
				// OpenAI: -100 bans the token. A finite bias only
				// makes it unlikely.
				v = C.float(math.Inf(-1))
			}
			bias = append(bias, C.llama_logit_bias{token: C.llama_token(t), bias: v})
		}
		add(C.llama_sampler_init_logit_bias(C.int32_t(nVocab), C.int32_t(len(bias)), &bias[0]))
	}
	repeat := s.RepetitionPenalty
	if repeat <= 0 {
		repeat = 1
	}
	if repeat != 1 || s.PresencePenalty != 0 || s.FrequencyPenalty != 0 {
		lastN := s.PenaltyLastN
		if lastN == 0 {
			lastN = 64
		}
		add(C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(repeat), C.float(s.FrequencyPenalty), C.float(s.PresencePenalty)))
	}
	if s.Temperature <= 0 {
		return chain, C.llama_sampler_init_greedy()
	}
	if s.TopK > 0 {
		add(C.llama_sampler_init_top_k(C.int32_t(s.TopK)))
	}
	if s.TopP > 0 && s.TopP < 1 {
		add(C.llama_sampler_init_top_p(C.float(s.TopP), 1))
	}
	if s.MinP > 0 {
		add(C.llama_sampler_init_min_p(C.float(s.MinP), 1))
	}
	add(C.llama_sampler_init_temp(C.float(s.Temperature)))
	return chain, C.llama_sampler_init_dist(C.uint32_t(s.Seed))
}

// sample picks the sequence's next token from the logits at batch index
// idx of the last llama_decode, and records its log-probabilities when
// asked. It runs on the scheduler goroutine.
func (s *sequence) sample(idx int) engine.Token {
	p := s.smpl
	if p.dead {
		return p.eog
	}
	if p.keep {
		p.logits = append(p.logits[:0], unsafe.Slice((*float32)(unsafe.Pointer(C.llama_get_logits_ith(s.m.ctx, C.int(idx)))), p.n)...)
	}
	var dead C.int
	tok := engine.Token(C.rbee_sample(s.m.ctx, C.int(idx), p.pre, p.pick, p.grammar, p.vocab, &p.prefix, &p.utf8, p.cur, C.int(p.n), &dead))
	if dead != 0 {
		// The grammar allows nothing (the vocabulary cannot write what it
		// needs): end the generation rather than break the grammar.
		p.dead = true
		tok = p.eog
	}
	if p.lp {
		var ids [engine.MaxTopLogprobs]C.llama_token
		var lps [engine.MaxTopLogprobs]C.float
		chosen := C.rbee_logprobs(s.m.ctx, C.int(idx), C.int(p.n), C.llama_token(tok), C.int(min(p.top, p.n)), &ids[0], &lps[0])
		p.last = engine.TokenLogprobs{Chosen: engine.TokenLogprob{Token: tok, Logprob: float32(chosen)}}
		if p.top > 0 {
			p.last.Top = make([]engine.TokenLogprob, min(p.top, p.n))
			for i := range p.last.Top {
				p.last.Top[i] = engine.TokenLogprob{Token: engine.Token(ids[i]), Logprob: float32(lps[i])}
			}
		}
	}
	return tok
}

// LastLogprobs are the log-probabilities of the token Sample returns,
// when Sampling.Logprobs or TopLogprobs asked for them (zero otherwise).
// Like Sample, it reads what the last step wrote.
func (s *sequence) LastLogprobs() engine.TokenLogprobs {
	if s.smpl == nil {
		return engine.TokenLogprobs{}
	}
	return s.smpl.last
}

// grammarAccepts reports whether the GBNF grammar accepts the text of
// toks whole: each token in turn, then the end of generation. Tests use
// it to check grammars against llama.cpp's own parser and matcher.
func grammarAccepts(m *Model, gbnf string, toks []engine.Token) (bool, error) {
	gs := C.CString(gbnf)
	root := C.CString("root")
	g := C.llama_sampler_init_grammar(m.vocab, gs, root)
	C.free(unsafe.Pointer(gs))
	C.free(unsafe.Pointer(root))
	if g == nil {
		return false, &engine.SamplingError{Field: "grammar", Msg: "llama.cpp cannot parse it"}
	}
	defer C.llama_sampler_free(g)
	var u C.rbee_utf8
	for _, t := range toks {
		if C.rbee_allows(g, m.vocab, &u, C.llama_token(t)) == 0 {
			return false, nil
		}
		C.rbee_utf8_ok(m.vocab, u, C.llama_token(t), &u)
		C.llama_sampler_accept(g, C.llama_token(t))
	}
	eog := C.llama_vocab_eos(m.vocab)
	return C.rbee_allows(g, m.vocab, &u, eog) != 0, nil
}
