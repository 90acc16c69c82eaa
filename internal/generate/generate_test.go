package generate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/engine/fake"
	"github.com/rbee/rbee/internal/testmodel"
	"github.com/rbee/rbee/internal/wire"
)

func run(t *testing.T, m *fake.Model, ctx context.Context, prompt string, maxTokens int, stop ...string) ([]string, Result) {
	t.Helper()
	toks, _ := m.Tokenize(prompt)
	var pieces []string
	res, err := Run(ctx, m, Request{Prompt: toks, MaxTokens: maxTokens, Stop: stop}, func(p Piece) error {
		s := p.Text
		if !utf8.ValidString(s) {
			t.Errorf("piece %q is not valid UTF-8", s)
		}
		pieces = append(pieces, s)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pieces, res
}

func TestRun(t *testing.T) {
	cases := []struct {
		name, prompt string
		max          int
		stop         []string
		want, reason string
		out          int
	}{
		{"eos", "abc", 100, nil, "defghijklmnopqrstuvwxyz", wire.StopEOS, 23},
		{"max tokens", "abc", 3, nil, "def", wire.StopMaxTokens, 3},
		{"stop in one token", "abc", 100, []string{"g"}, "def", wire.StopSequence, 4},
		{"stop across tokens", "abc", 100, []string{"ghi"}, "def", wire.StopSequence, 6},
		{"stop prefix that fails", "abc", 100, []string{"efx"}, "defghijklmnopqrstuvwxyz", wire.StopEOS, 23},
		{"earliest stop wins", "abc", 100, []string{"jk", "fg"}, "de", wire.StopSequence, 4},
		{"split utf-8", "|", 4, nil, "}~é", wire.StopMaxTokens, 4},
		{"stop after split utf-8", "|", 10, []string{"é"}, "}~", wire.StopSequence, 4},
		{"stop prefix held at max tokens", "abc", 2, []string{"efg"}, "de", wire.StopMaxTokens, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pieces, res := run(t, &fake.Model{}, context.Background(), c.prompt, c.max, c.stop...)
			if got := strings.Join(pieces, ""); got != c.want {
				t.Errorf("text %q, want %q", got, c.want)
			}
			if res.StopReason != c.reason || res.TokensOut != c.out {
				t.Errorf("stop %s after %d tokens, want %s after %d", res.StopReason, res.TokensOut, c.reason, c.out)
			}
			if res.TokensIn != len(c.prompt)+1 {
				t.Errorf("tokens_in %d", res.TokensIn)
			}
		})
	}
}

func TestSplitCharacterIsHeldBack(t *testing.T) {
	pieces, _ := run(t, &fake.Model{}, context.Background(), "}", 3)
	// "~" then 0xC3 (held) then 0xA9 completes "é".
	if len(pieces) != 2 || pieces[0] != "~" || pieces[1] != "é" {
		t.Fatalf("pieces %q", pieces)
	}
}

func TestCancelStopsWithinOneToken(t *testing.T) {
	m := &fake.Model{}
	ctx, cancel := context.WithCancel(context.Background())
	toks, _ := m.Tokenize("a")
	n := 0
	res, err := Run(ctx, m, Request{Prompt: toks, MaxTokens: 1000}, func(Piece) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != wire.StopCancelled || res.TokensOut != 3 {
		t.Fatalf("stop %s after %d tokens", res.StopReason, res.TokensOut)
	}
}

func TestContextLimit(t *testing.T) {
	m := &fake.Model{CtxSize: 8}
	_, res := run(t, m, context.Background(), "a", 100)
	if res.StopReason != wire.StopContextLimit {
		t.Fatalf("stop %s", res.StopReason)
	}
}

func FuzzTextOut(f *testing.F) {
	f.Add([]byte("hello wor\xc3\xa9ld"), "wor", uint8(3))
	f.Add([]byte("\xff\xfeabc"), "", uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, stop string, chunk uint8) {
		size := int(chunk%7) + 1
		o := textOut{}
		if stop != "" {
			o.stops = []string{stop}
		}
		var got strings.Builder
		stopped := false
		for i := 0; i < len(data) && !stopped; i += size {
			s, st := o.add(data[i:min(i+size, len(data))])
			if !utf8.ValidString(s) {
				t.Fatalf("invalid UTF-8 piece %q", s)
			}
			got.WriteString(s)
			stopped = st
		}
		if !stopped {
			got.WriteString(o.flush())
		}
		want := strings.ToValidUTF8(string(data), "\uFFFD")
		if stop != "" {
			if i := strings.Index(string(data), stop); i >= 0 {
				want = strings.ToValidUTF8(string(data[:i]), "\uFFFD")
			}
		}
		if utf8.ValidString(string(data)) && got.String() != want {
			t.Fatalf("got %q, want %q", got.String(), want)
		}
	})
}

// badPiece cannot render one token, standing in for an engine that samples
// a token its vocabulary cannot turn into text.
type badPiece struct {
	*fake.Model
	bad engine.Token
}

var errRender = errors.New("cannot render")

func (m badPiece) Piece(t engine.Token) ([]byte, error) {
	if t == m.bad {
		return nil, errRender
	}
	return m.Model.Piece(t)
}

func TestPieceErrorEndsRun(t *testing.T) {
	m := badPiece{Model: &fake.Model{}, bad: engine.Token(testmodel.CharToken('f'))}
	toks, _ := m.Tokenize("abc")
	var got strings.Builder
	res, err := Run(context.Background(), m, Request{Prompt: toks, MaxTokens: 100}, func(p Piece) error {
		got.WriteString(p.Text)
		return nil
	})
	if !errors.Is(err, errRender) {
		t.Fatalf("error %v, want %v", err, errRender)
	}
	if got.String() != "de" || res.TokensOut != 2 {
		t.Errorf("text %q after %d tokens, want %q after 2", got.String(), res.TokensOut, "de")
	}
}
