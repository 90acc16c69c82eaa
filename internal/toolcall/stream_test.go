package toolcall

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
)

// streamCuts runs text through a Stream cut at the given offsets and
// checks the deltas' shape; it returns the reassembled result.
func streamCuts(t *testing.T, f Format, opt Options, text string, cuts []int) Result {
	t.Helper()
	s := NewStream(f, opt)
	var ds []Delta
	prev := 0
	for _, c := range append(cuts, len(text)) {
		ds = append(ds, s.Add(text[prev:c])...)
		prev = c
	}
	ds = append(ds, s.Close()...)
	if extra := s.Add("more"); extra != nil {
		t.Fatalf("Add after Close returned %v", extra)
	}
	checkShape(t, ds)
	return collect(ds)
}

// checkShape checks the deltas are what an OpenAI stream carries: one kind
// per delta, no empty text, a call's header (index, id, name) before its
// arguments, calls in index order.
func checkShape(t *testing.T, ds []Delta) {
	t.Helper()
	next, open := 0, -1
	for i, d := range ds {
		kinds := 0
		if d.Content != "" {
			kinds++
		}
		if d.Reasoning != "" {
			kinds++
		}
		if d.Call != nil {
			kinds++
		}
		if kinds != 1 {
			t.Fatalf("delta %d has %d kinds: %+v", i, kinds, d)
		}
		c := d.Call
		if c == nil {
			continue
		}
		switch {
		case c.ID != "":
			if c.Index != next || c.Name == "" || c.Arguments != "" {
				t.Fatalf("delta %d: bad call header %+v (next index %d)", i, *c, next)
			}
			open = next
			next++
		case c.Index != open || c.Name != "" || c.Arguments == "":
			t.Fatalf("delta %d: bad arguments delta %+v (open call %d)", i, *c, open)
		}
	}
}

// compositions calls fn with every way of cutting n bytes into pieces of
// 1 to 3 bytes.
func compositions(n int, fn func(cuts []int)) {
	var rec func(at int, cuts []int)
	rec = func(at int, cuts []int) {
		if at == n {
			fn(cuts[:len(cuts):len(cuts)])
			return
		}
		for k := 1; k <= 3 && at+k <= n; k++ {
			next := cuts
			if at+k < n {
				next = append(cuts, at+k)
			}
			rec(at+k, next)
		}
	}
	rec(0, nil)
}

func TestStreamMatchesParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			want := withoutIDs(Parse(tc.f, tc.text, tc.opt))
			n := len(tc.text)
			check := func(cuts []int) {
				got := withoutIDs(streamCuts(t, tc.f, tc.opt, tc.text, cuts))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("cut at %v:\n got %#v\nwant %#v", cuts, got, want)
				}
			}
			if n <= 20 {
				compositions(n, check)
			}
			// Every piece size from 1 to 3 and every single and double cut.
			for size := 1; size <= 3; size++ {
				var cuts []int
				for c := size; c < n; c += size {
					cuts = append(cuts, c)
				}
				check(cuts)
			}
			for i := 1; i < n; i++ {
				check([]int{i})
				if n <= 120 {
					for j := i + 1; j < n; j++ {
						check([]int{i, j})
					}
				}
			}
			// Random cuttings into 1 to 3 byte pieces.
			r := rand.New(rand.NewPCG(uint64(n), 7))
			for range 300 {
				var cuts []int
				for c := 1 + r.IntN(3); c < n; c += 1 + r.IntN(3) {
					cuts = append(cuts, c)
				}
				check(cuts)
			}
		})
	}
}

func TestStreamEmitsEarly(t *testing.T) {
	s := NewStream(Hermes, tools())
	steps := []struct {
		piece string
		want  string // the deltas, printed
	}{
		{"Hello", `content "Hello"`},
		{" there ", `content " there"`},
		{"<tool", ``},
		{"_call>\n{\"name\": \"get_time\",", ``},
		{" \"arguments\": {}}", `call 0 get_time; args 0 {}`},
		{"\n</tool_call>\n", ``},
		{"<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"X\"}}", `call 1 get_weather; args 1 {"city":"X"}`},
		{"</tool_call> ok", `content "ok"`},
	}
	for _, st := range steps {
		if got := show(s.Add(st.piece)); got != st.want {
			t.Fatalf("Add(%q) = %s, want %s", st.piece, got, st.want)
		}
	}
	if got := show(s.Close()); got != "" {
		t.Fatalf("Close = %s", got)
	}
}

// Text that only looks like a call goes out at the first byte that rules a
// call out, not at the end of the answer.
func TestStreamReleasesBadCallsEarly(t *testing.T) {
	cases := []struct {
		f            Format
		piece, wantS string
	}{
		{Hermes, `<tool_call>{name: "get_time"} and on`, `content "<tool_call>{name: \"get_time\"} and on"`},
		{Hermes, `<tool_call>{"name": "get_time", "arguments": {"a": 01`, `content "<tool_call>{\"name\": \"get_time\", \"arguments\": {\"a\": 01"`},
		{Llama3, `{"name": "get_time", "parameters": {"x": tru `, `content "{\"name\": \"get_time\", \"parameters\": {\"x\": tru"`},
		{Mistral, `[TOOL_CALLS] [{"name": "get_time"] more`, `content "[TOOL_CALLS] [{\"name\": \"get_time\"] more"`},
		{Llama3, `<|python_tag|>print(1) `, `content "<|python_tag|>print(1)"`},
	}
	for _, tc := range cases {
		s := NewStream(tc.f, tools())
		if got := show(s.Add(tc.piece)); got != tc.wantS {
			t.Errorf("%s: Add(%q) = %s, want %s", tc.f, tc.piece, got, tc.wantS)
		}
	}
}

func TestStreamReasoningEarly(t *testing.T) {
	s := NewStream(Hermes, Options{Reasoning: true, Tools: weatherTools})
	steps := []struct{ piece, want string }{
		{"  <thi", ``},
		{"nk>\nLet me", `reasoning "Let me"`},
		{" think \n", `reasoning " think"`},
		{"more</th", `reasoning " \nmore"`},
		{"ink>\n\nAnswer", `content "Answer"`},
	}
	for _, st := range steps {
		if got := show(s.Add(st.piece)); got != st.want {
			t.Fatalf("Add(%q) = %s, want %s", st.piece, got, st.want)
		}
	}
}

func TestStreamUTF8Held(t *testing.T) {
	s := NewStream(Generic, Options{})
	euro := "€" // 3 bytes
	if got := show(s.Add("a" + euro[:2])); got != `content "a"` {
		t.Fatalf("got %s", got)
	}
	if got := show(s.Add(euro[2:])); got != `content "€"` {
		t.Fatalf("got %s", got)
	}
}

func show(ds []Delta) string {
	out := ""
	for _, d := range ds {
		if out != "" {
			out += "; "
		}
		switch {
		case d.Call != nil && d.Call.ID != "":
			out += fmt.Sprintf("call %d %s", d.Call.Index, d.Call.Name)
		case d.Call != nil:
			out += fmt.Sprintf("args %d %s", d.Call.Index, d.Call.Arguments)
		case d.Reasoning != "":
			out += fmt.Sprintf("reasoning %q", d.Reasoning)
		default:
			out += fmt.Sprintf("content %q", d.Content)
		}
	}
	return out
}
