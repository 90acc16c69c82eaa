package llama

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/rbee/rbee/internal/engine"
)

func TestLogitBias(t *testing.T) {
	m := loadTiny(t, 256)
	base, _, _ := sampleRun(t, m, "Once upon a time", engine.Sampling{}, 48)
	counts := map[engine.Token]int{}
	for _, tok := range base {
		counts[tok]++
	}
	var top engine.Token
	for tok, n := range counts {
		if n > counts[top] || n == counts[top] && tok < top {
			top = tok
		}
	}
	banned, _, _ := sampleRun(t, m, "Once upon a time", engine.Sampling{LogitBias: map[engine.Token]float32{top: -100}}, 48)
	if slices.Contains(banned, top) {
		t.Fatalf("token %d banned with -100, yet generated: %v", top, banned)
	}
	if slices.Equal(banned, base) {
		t.Fatal("banning a token changed nothing")
	}
	// A large positive bias makes a token win every greedy step.
	forced, _, _ := sampleRun(t, m, "Once upon a time", engine.Sampling{LogitBias: map[engine.Token]float32{300: 100}}, 8)
	for _, tok := range forced {
		if tok != 300 {
			t.Fatalf("bias +100 on 300: %v", forced)
		}
	}
}

// Every penalty changes the greedy output of a model that repeats itself.
func TestPenalties(t *testing.T) {
	m := loadTiny(t, 256)
	base, _, _ := sampleRun(t, m, "Once upon a time", engine.Sampling{}, 64)
	seen := map[engine.Token]bool{}
	repeats := 0
	for _, tok := range base {
		if seen[tok] {
			repeats++
		}
		seen[tok] = true
	}
	if repeats < 10 {
		t.Fatalf("the greedy output hardly repeats (%d repeats), no test of penalties: %v", repeats, base)
	}
	for _, s := range []engine.Sampling{
		{RepetitionPenalty: 1.5},
		{PresencePenalty: 1.5},
		{FrequencyPenalty: 1.5},
		{FrequencyPenalty: 1.5, PenaltyLastN: -1},
	} {
		got, _, _ := sampleRun(t, m, "Once upon a time", s, 64)
		if slices.Equal(got, base) {
			t.Errorf("%+v: greedy output unchanged", s)
		}
		again, _, _ := sampleRun(t, m, "Once upon a time", s, 64)
		if !slices.Equal(got, again) {
			t.Errorf("%+v: greedy output differs between runs", s)
		}
	}
}

// Logprobs are the log-softmax of the raw logits.
func TestLogprobs(t *testing.T) {
	m := loadTiny(t, 256)
	prompt, _ := m.Tokenize("Once upon a time")
	for _, s := range []engine.Sampling{
		{Logprobs: true, TopLogprobs: 5},
		{Temperature: 0.7, Seed: 3, TopK: 40, RepetitionPenalty: 1.3, Logprobs: true, TopLogprobs: 20},
		{Logprobs: true},
	} {
		seq, err := m.NewSequence(s)
		if err != nil {
			t.Fatal(err)
		}
		seq.(*sequence).smpl.keep = true
		if err := seq.Prefill(context.Background(), prompt); err != nil {
			t.Fatal(err)
		}
		for range 12 {
			tok := seq.Sample()
			lp := seq.(*sequence).LastLogprobs()
			want := logSoftmax(seq.(*sequence).smpl.logits)
			if lp.Chosen.Token != tok || math.Abs(float64(lp.Chosen.Logprob)-want[tok]) > 1e-4 {
				t.Fatalf("%+v: chosen %+v, want token %d logprob %g", s, lp.Chosen, tok, want[tok])
			}
			if len(lp.Top) != s.TopLogprobs {
				t.Fatalf("%+v: %d top logprobs", s, len(lp.Top))
			}
			order := make([]int, len(want))
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int {
				if want[a] > want[b] {
					return -1
				} else if want[a] < want[b] {
					return 1
				}
				return 0
			})
			for i, e := range lp.Top {
				if math.Abs(float64(e.Logprob)-want[order[i]]) > 1e-4 || math.Abs(want[e.Token]-want[order[i]]) > 1e-6 {
					t.Fatalf("%+v: top %d is %+v, want token %d logprob %g", s, i, e, order[i], want[order[i]])
				}
			}
			if m.IsEOG(tok) {
				break
			}
			if err := seq.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
		seq.Close()
	}
	seq, _ := m.NewSequence(engine.Sampling{})
	defer seq.Close()
	seq.Prefill(context.Background(), prompt)
	if lp := seq.(*sequence).LastLogprobs(); lp.Chosen != (engine.TokenLogprob{}) || lp.Top != nil {
		t.Fatalf("logprobs without asking: %+v", lp)
	}
}

func logSoftmax(logits []float32) []float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) - mx)
	}
	out := make([]float64, len(logits))
	for i, l := range logits {
		out[i] = float64(l) - mx - math.Log(sum)
	}
	return out
}

func TestSamplingErrors(t *testing.T) {
	m := loadTiny(t, 256)
	for _, tc := range []struct {
		s     engine.Sampling
		field string
	}{
		{engine.Sampling{LogitBias: map[engine.Token]float32{100000: 1}}, "logit_bias"},
		{engine.Sampling{LogitBias: map[engine.Token]float32{-1: 1}}, "logit_bias"},
		{engine.Sampling{TopLogprobs: 21}, "top_logprobs"},
		{engine.Sampling{Grammar: "root ::= [a"}, "grammar"},
	} {
		_, err := m.NewSequence(tc.s)
		var se *engine.SamplingError
		if !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("%+v: %v, want a SamplingError on %s", tc.s, err, tc.field)
		}
	}
}
