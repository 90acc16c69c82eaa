package testmodel

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/gguf"
)

var testReplies = []string{
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
	"<think>\nI should say hi.\n</think>\n\nHello!",
	"{\"a\": [1, 2,",
	"héllo ☃",
	"",
	"aaaa",
}

func writeScripted(t *testing.T, replies []string, opt ScriptOptions) (string, *gguf.File) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.gguf")
	if err := WriteScripted(p, replies, opt); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func TestWriteScripted(t *testing.T) {
	p1, f := writeScripted(t, testReplies, ScriptOptions{})
	p2, _ := writeScripted(t, testReplies, ScriptOptions{})
	if sha(t, p1) != sha(t, p2) {
		t.Error("two writes differ")
	}
	size, err := ScriptedFileSize(testReplies, ScriptOptions{})
	if err != nil || f.FileSize != size {
		t.Errorf("size %d, ScriptedFileSize %d, %v", f.FileSize, size, err)
	}
	if err := f.RequireWeights(); err != nil {
		t.Error(err)
	}
	total := 0
	for _, r := range testReplies {
		total += len(r)
	}
	nVocab := baseVocabSize + len(testReplies) + total
	if n, _ := f.KV.Uint("llama.vocab_size"); n != uint64(nVocab) {
		t.Errorf("vocab_size %d, want %d", n, nVocab)
	}
	if e, _ := f.KV.Uint("llama.embedding_length"); e%64 != 0 || e < uint64(1+len(testReplies)+total) {
		t.Errorf("embedding_length %d", e)
	}
	if name, _ := f.KV.String("general.name"); name != ScriptedName {
		t.Errorf("name %q", name)
	}
	tokens, scores, types, err := ScriptedVocab(testReplies, ScriptOptions{})
	if err != nil || len(tokens) != nVocab || len(scores) != nVocab || len(types) != nVocab {
		t.Fatalf("vocab of %d, %d, %d, %v", len(tokens), len(scores), len(types), err)
	}
	// llama.cpp refuses a vocabulary with a text twice.
	seen := map[string]bool{}
	for _, tok := range tokens {
		if seen[tok] {
			t.Errorf("token %q twice", tok)
		}
		seen[tok] = true
	}
	// The chain tokens spell the replies, as llama.cpp detokenizes them.
	var spelled strings.Builder
	for id := baseVocabSize + len(testReplies); id < nVocab; id++ {
		b, ok := chainByte(tokens[id])
		if !ok || types[id] != typeByte {
			t.Fatalf("token %d %q type %d", id, tokens[id], types[id])
		}
		spelled.WriteByte(b)
	}
	if got := spelled.String(); got != strings.Join(testReplies, "") {
		t.Errorf("chain spells %q", got)
	}
	for i := range testReplies {
		if id := baseVocabSize + i; tokens[id] != ReplyMarker(i) || types[id] != scriptTypeUserDefined {
			t.Errorf("marker %d: %q type %d", i, tokens[id], types[id])
		}
	}
}

func TestScriptedOptions(t *testing.T) {
	_, f := writeScripted(t, []string{"x"}, ScriptOptions{
		Name: "mine",
		ExtraKVs: []gguf.WriteKV{
			{Key: "tokenizer.chat_template", Value: "{{ messages }}"},
			{Key: "llama.context_length", Value: uint32(512)},
		},
	})
	if name, _ := f.KV.String("general.name"); name != "mine" {
		t.Errorf("name %q", name)
	}
	if tmpl, _ := f.KV.String("tokenizer.chat_template"); tmpl != "{{ messages }}" {
		t.Errorf("template %q", tmpl)
	}
	if f.ContextLength() != 512 {
		t.Errorf("context %d", f.ContextLength())
	}
	for _, bad := range [][]string{nil, make([]string, MaxReplies+1), {strings.Repeat("x", MaxScriptBytes+1)}} {
		if err := WriteScripted(filepath.Join(t.TempDir(), "bad.gguf"), bad, ScriptOptions{}); err == nil {
			t.Errorf("%d replies of %d bytes written", len(bad), len(strings.Join(bad, "")))
		}
	}
	for _, bad := range []struct {
		replies []string
		opt     ScriptOptions
	}{
		{[]string{"hi"}, ScriptOptions{Specials: []string{""}}},
		{[]string{"hi"}, ScriptOptions{Specials: []string{"a"}}},
		{[]string{"hi"}, ScriptOptions{Added: []string{"[reply:0]"}}},
		{[]string{"hi"}, ScriptOptions{Specials: []string{"<s>"}}},
		{[]string{"hi"}, ScriptOptions{Specials: []string{"<x>"}, Added: []string{"<x>"}}},
		{[]string{"<t>a<t>"}, ScriptOptions{Added: []string{"<t>"}}},
		{[]string{"ab"}, ScriptOptions{Added: []string{"<0x62>#357"}}},
		// After <1> in reply 1, "a" and EOS both read <1> and reply 1's
		// direction (EOS for <2>, which ends reply 1): a tie.
		{[]string{"hi", "<1>a<2>", "<1>", "<2>b"}, ScriptOptions{Added: []string{"<1>", "<2>"}}},
	} {
		if err := WriteScripted(filepath.Join(t.TempDir(), "bad.gguf"), bad.replies, bad.opt); err == nil {
			t.Errorf("%q %+v written", bad.replies, bad.opt)
		} else {
			t.Log(err)
		}
	}
	if _, err := ScriptedFileSize(make([]string, MaxReplies), ScriptOptions{}); err != nil {
		t.Error(err)
	}
}

func TestScriptedReply(t *testing.T) {
	for _, c := range []struct {
		prompt string
		want   int
	}{
		{"", 0},
		{"hi", 0},
		{"[reply:3]", 3},
		{"[reply:3] [reply:1]", 3},
		{"[reply:6]", 0},
		{"[reply:1", 0},
	} {
		if got := ScriptedReply(testReplies, c.prompt); got != testReplies[c.want] {
			t.Errorf("%q: %q, want reply %d", c.prompt, got, c.want)
		}
	}
}

// Running the file's weights by hand (float64, rotary embedding left out:
// it turns the keys by nanoradians) gives ScriptedReply for every prompt.
func TestScriptedWeights(t *testing.T) {
	path, f := writeScripted(t, testReplies, ScriptOptions{})
	m := loadNet(t, path, f, testReplies, ScriptOptions{})
	long := strings.Repeat("some text {\"x\": 1} ☃\n", 10)
	for _, prompt := range []string{
		"", "hello", "assistant:", "[reply:1]", "x[reply:2]y", "[reply:3]" + long, long + "[reply:5]" + long,
		"[reply:5] [reply:2]", "[reply:4]", "[reply:4] [reply:0]", "[reply:9]",
	} {
		want := ScriptedReply(testReplies, prompt)
		if got, eos := m.generate(t, prompt, len(want)+4); got != want || !eos {
			t.Errorf("%.40q: %q (eos %v), want %q", prompt, got, eos, want)
		}
	}
}

var (
	extraOptions = ScriptOptions{
		Specials: []string{"[TOOL_CALLS]", "<|python_tag|>", "<|eom_id|>", "<|im_start|>"},
		Added:    []string{"<think>", "</think>", "<tool_call>"},
	}
	extraReplies = []string{
		"[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]",
		"<|python_tag|>{\"name\": \"f\"}<|eom_id|>",
		"<think>\nhmm\n</think>\n\nok",
		"<think>\nother\n</think>\n\n<tool_call>\n{}\n</tool_call>",
		"",
		"[TOOL_CALLS]x",
		"<think></think>",
	}
)

// Extra tokens in replies come out as themselves, also those that several
// replies hold.
func TestScriptedExtraTokens(t *testing.T) {
	path, f := writeScripted(t, extraReplies, extraOptions)
	m := loadNet(t, path, f, extraReplies, extraOptions)
	tokens, _, types, err := ScriptedVocab(extraReplies, extraOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range slices.Concat(extraOptions.Specials, extraOptions.Added) {
		id := baseVocabSize + len(extraReplies) + i
		want := int32(typeControl)
		if i >= len(extraOptions.Specials) {
			want = scriptTypeUserDefined
		}
		if tokens[id] != text || types[id] != want {
			t.Errorf("extra %d: %q type %d", i, tokens[id], types[id])
		}
	}
	for _, prompt := range []string{
		"", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "[reply:1]", "[reply:2]<|im_start|>", "[reply:3]",
		"[reply:4]", "[reply:5]", "[reply:6] <think> x", "[reply:3] [TOOL_CALLS] x",
	} {
		want := ScriptedReply(extraReplies, prompt)
		if got, eos := m.generate(t, prompt, len(want)+4); got != want || !eos {
			t.Errorf("%.40q: %q (eos %v), want %q", prompt, got, eos, want)
		}
	}
}

func chainByte(tok string) (byte, bool) {
	if len(tok) < 8 || !strings.HasPrefix(tok, "<0x") || tok[5:7] != ">#" {
		return 0, false
	}
	b, err := strconv.ParseUint(tok[3:5], 16, 8)
	return byte(b), err == nil
}

type scriptNet struct {
	e, v, hd               int
	tokens                 []string
	embd, q, k, vw, o, out []float32
	nReplies               int
	sharpen                float32
	specials               []string
}

func loadNet(t *testing.T, path string, f *gguf.File, replies []string, opt ScriptOptions) *scriptNet {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tensor := func(name string) []float32 {
		ti, ok := f.Tensor(name)
		if !ok || ti.Type != gguf.TypeF32 {
			t.Fatalf("%s missing or not F32", name)
		}
		raw := b[f.DataOffset+ti.Offset : f.DataOffset+ti.Offset+ti.Size]
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out
	}
	for _, name := range []string{"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.0.ffn_down.weight"} {
		for _, x := range tensor(name) {
			if x != 0 {
				t.Fatalf("%s is not zero", name)
			}
		}
	}
	sharpen := tensor("output_norm.weight")
	for name, want := range map[string]float32{"blk.0.attn_norm.weight": 1, "blk.0.ffn_norm.weight": 1, "output_norm.weight": sharpen[0]} {
		for _, x := range tensor(name) {
			if x != want {
				t.Fatalf("%s holds %g, want %g", name, x, want)
			}
		}
	}
	e, _ := f.KV.Uint("llama.embedding_length")
	tokens, _, _, _ := ScriptedVocab(replies, opt)
	sc, err := newScript(replies, opt)
	if err != nil || sc.sharpen() != sharpen[0] {
		t.Fatalf("output_norm %g, want %g (%v)", sharpen[0], sc.sharpen(), err)
	}
	// llama.cpp splits these out of the text first, longest first.
	specials := slices.Concat(opt.Specials, opt.Added)
	for i := range replies {
		specials = append(specials, ReplyMarker(i))
	}
	slices.SortStableFunc(specials, func(a, b string) int { return len(b) - len(a) })
	return &scriptNet{
		e: int(e), v: len(tokens), sharpen: sharpen[0], specials: specials, hd: scriptHeadDim, tokens: tokens, nReplies: len(testReplies),
		embd: tensor("token_embd.weight"), q: tensor("blk.0.attn_q.weight"), k: tensor("blk.0.attn_k.weight"),
		vw: tensor("blk.0.attn_v.weight"), o: tensor("blk.0.attn_output.weight"), out: tensor("output.weight"),
	}
}

// tokenize splits out markers and extra tokens, then tokenizes the rest
// like llama.cpp.
func (m *scriptNet) tokenize(prompt string) []int {
	return append([]int{TokenBOS}, m.split(prompt, 0)...)
}

func (m *scriptNet) split(text string, from int) []int {
	for _, sp := range m.specials[from:] {
		if before, after, ok := strings.Cut(text, sp); ok {
			ids := m.split(before, from)
			ids = append(ids, slices.Index(m.tokens, sp))
			return append(ids, m.split(after, from)...)
		}
	}
	return Tokenize(text)
}

func matVec(w []float32, x []float64, rows int) []float64 {
	cols := len(x)
	y := make([]float64, rows)
	for r := range rows {
		for c, xc := range x {
			y[r] += float64(w[r*cols+c]) * xc
		}
	}
	return y
}

func rmsNorm(x []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = v * s
	}
	return y
}

func (m *scriptNet) generate(t *testing.T, prompt string, maxTokens int) (string, bool) {
	ids := m.tokenize(prompt)
	var keys, vals [][]float64
	var out []byte
	pos := 0
	for range maxTokens + len(ids) {
		x := make([]float64, m.e)
		for c := range m.e {
			x[c] = float64(m.embd[ids[pos]*m.e+c])
		}
		xn := rmsNorm(x)
		q := matVec(m.q, xn, m.hd)
		keys = append(keys, matVec(m.k, xn, m.hd))
		vals = append(vals, matVec(m.vw, xn, m.hd))
		scores := make([]float64, len(keys))
		top := math.Inf(-1)
		for s, k := range keys {
			for d := range q {
				scores[s] += q[d] * k[d] / math.Sqrt(float64(m.hd))
			}
			top = max(top, scores[s])
		}
		att := make([]float64, m.hd)
		var sum float64
		for s := range scores {
			w := math.Exp(scores[s] - top)
			sum += w
			for d := range att {
				att[d] += w * vals[s][d]
			}
		}
		for d := range att {
			att[d] /= sum
		}
		o := matVec(m.o, att, m.e)
		for c := range x {
			x[c] += o[c]
		}
		pos++
		if pos < len(ids) {
			continue
		}
		xn = rmsNorm(x)
		for c := range xn {
			xn[c] *= float64(m.sharpen)
		}
		logits := matVec(m.out, xn, m.v)
		best, second := 0, math.Inf(-1)
		for j, l := range logits {
			if l > logits[best] {
				best, second = j, logits[best]
			} else if j != best && l > second {
				second = l
			}
		}
		// Margin enough that sampling at temperature 1 picks the same.
		if logits[best]-second < scriptMargin-1 { // RMSNorm's epsilon takes a little
			t.Errorf("%.40q: token %d leads by %.1f only", prompt, best, logits[best]-second)
		}
		if best == TokenEOS {
			return string(out), true
		}
		if b, ok := chainByte(m.tokens[best]); ok {
			out = append(out, b)
		} else if slices.Contains(m.specials, m.tokens[best]) && best >= baseVocabSize+m.nReplies {
			out = append(out, m.tokens[best]...)
		} else {
			t.Fatalf("%q: generated token %d %q", prompt, best, m.tokens[best])
		}
		ids = append(ids, best)
	}
	return string(out), false
}

// Any replies and extra tokens give a model whose chains spell the replies,
// or an error; never a panic.
func FuzzScripted(f *testing.F) {
	f.Add("hi\x00<think>a</think>\x00", "<think>\x00</think>")
	f.Add("<1>a<2>\x00<1>\x00<2>b", "<1>\x00<2>")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, replies, extras string) {
		rs := strings.Split(replies, "\x00")
		opt := ScriptOptions{}
		if extras != "" {
			opt.Added = strings.Split(extras, "\x00")
		}
		s, err := newScript(rs, opt)
		if err != nil {
			return
		}
		for i, chain := range s.chains {
			var b strings.Builder
			for _, id := range chain {
				if c, ok := chainByte(s.tokens[id]); ok {
					b.WriteByte(c)
				} else {
					b.WriteString(s.tokens[id])
				}
			}
			if b.String() != rs[i] {
				t.Fatalf("reply %d spelled %q, want %q", i, b.String(), rs[i])
			}
		}
		if m := s.sharpen(); m <= 0 || math.IsInf(float64(m), 0) || math.IsNaN(float64(m)) {
			t.Fatalf("output_norm weight %g", m)
		}
	})
}
