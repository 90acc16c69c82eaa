package toolcall

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

var fuzzFormats = []Format{Generic, Hermes, Llama3, Mistral}

// fuzzOptions picks options from a byte: tools or none, reasoning modes.
func fuzzOptions(b byte) Options {
	var o Options
	if b&1 != 0 {
		o.Tools = weatherTools
	}
	o.Reasoning = b&2 != 0
	o.ThinkingOpen = b&4 != 0
	return o
}

func fuzzSeeds(f *testing.F) {
	for _, tc := range parseCases {
		for i, ff := range fuzzFormats {
			if ff == tc.f {
				f.Add(tc.text, byte(i), byte(3), uint64(len(tc.text)))
			}
		}
	}
	f.Add("<think>a</think><tool_call>{\"name\":\"get_time\"}</tool_call>", byte(1), byte(7), uint64(1))
	f.Add("[TOOL_CALLS]get_time[CALL_ID]x[ARGS]", byte(3), byte(1), uint64(2))
}

// checkResult checks what holds for every answer.
func checkResult(t *testing.T, text string, opt Options, r Result) {
	t.Helper()
	for _, c := range r.Calls {
		var obj map[string]any
		if json.Unmarshal([]byte(c.Arguments), &obj) != nil {
			t.Fatalf("call %q: arguments %q are not a JSON object", c.Name, c.Arguments)
		}
		known := false
		for _, tool := range opt.Tools {
			known = known || tool.Name == c.Name
		}
		if !known {
			t.Fatalf("call to unknown tool %q", c.Name)
		}
	}
	if len(r.Calls) == 0 && !opt.Reasoning && !opt.ThinkingOpen && r.Content != text {
		t.Fatalf("no call and no reasoning, yet content %q != text %q", r.Content, text)
	}
}

func FuzzParse(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, text string, format, opts byte, _ uint64) {
		ff := fuzzFormats[int(format)%len(fuzzFormats)]
		opt := fuzzOptions(opts)
		checkResult(t, text, opt, Parse(ff, text, opt))
	})
}

func FuzzStream(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, text string, format, opts byte, seed uint64) {
		ff := fuzzFormats[int(format)%len(fuzzFormats)]
		opt := fuzzOptions(opts)
		want := withoutIDs(Parse(ff, text, opt))
		r := rand.New(rand.NewPCG(seed, seed>>7))
		var cuts []int
		for c := 1 + r.IntN(4); c < len(text); c += 1 + r.IntN(4) {
			cuts = append(cuts, c)
		}
		got := withoutIDs(streamCuts(t, ff, opt, text, cuts))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("cut at %v:\n got %#v\nwant %#v", cuts, got, want)
		}
	})
}

// scanOnce scans text, cut at the given offsets, as a Stream does.
func scanOnce(text string, cuts []int) (int, status) {
	s := NewStream(Generic, Options{})
	for _, c := range cuts {
		if _, st := s.scanValue(text[:c], 0); st != needMore {
			return s.scanValue(text[:c], 0)
		}
	}
	return s.scanValue(text, 0)
}

// The scanner agrees with encoding/json: what it calls complete is valid
// JSON, a valid object or array is complete where it ends, and what it
// calls invalid is not JSON.
func FuzzScanner(f *testing.F) {
	for _, s := range []string{`{"a": [1, -2.5e+3, true, null, "x\u00e9\n"]}`, `[{}, [], ""]`, `{"a" 1}`, `[01]`, `{"a": tru}`, `[1.]`, "{\"\x01\"}", "{}0", "[\f]"} {
		f.Add(s, uint64(3))
	}
	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		r := rand.New(rand.NewPCG(seed, 1))
		var cuts []int
		for c := 1 + r.IntN(5); c < len(text); c += 1 + r.IntN(5) {
			cuts = append(cuts, c)
		}
		end, st := scanOnce(text, cuts)
		if wEnd, wSt := scanOnce(text, nil); wEnd != end || wSt != st {
			t.Fatalf("cut at %v: (%d, %v), whole: (%d, %v)", cuts, end, st, wEnd, wSt)
		}
		trimmed := trimRightWS(text)
		isContainer := text != "" && (text[0] == '{' || text[0] == '[')
		switch {
		case st == complete && !json.Valid([]byte(text[:end])):
			t.Fatalf("complete at %d but %q is not JSON", end, text[:end])
		case st == invalid && isContainer && json.Valid([]byte(text)):
			t.Fatalf("invalid, but %q is JSON", text)
		case isContainer && json.Valid([]byte(text)) && (st != complete || end != len(trimmed)):
			t.Fatalf("%q is JSON, scan says (%d, %v)", text, end, st)
		}
	})
}
