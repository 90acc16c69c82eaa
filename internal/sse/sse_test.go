package sse

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriterReaderRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewWriter(rec)
	if err := w.Event(event{Type: "token", T: "a\nb"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Ping(); err != nil {
		t.Fatal(err)
	}
	if err := w.Event(event{Type: "end"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Done(); err != nil {
		t.Fatal(err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := NewReader(rec.Body)
	var got []string
	for {
		d, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(d))
	}
	want := []string{`{"type":"token","t":"a\nb","i":0}`, `{"type":"end","i":0}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestReaderEdgeCases(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
		wantErr  error
	}{
		{"multiline data", "data: a\ndata: b\n\ndata: [DONE]\n\n", []string{"a\nb"}, io.EOF},
		{"crlf", "data: x\r\n\r\ndata: [DONE]\r\n\r\n", []string{"x"}, io.EOF},
		{"no space", "data:x\n\ndata:[DONE]\n\n", []string{"x"}, io.EOF},
		{"cut without done", "data: x\n\n", []string{"x"}, io.ErrUnexpectedEOF},
		{"empty", "", nil, io.ErrUnexpectedEOF},
		{"comments only", ": ping\n\n: ping\n\n", nil, io.ErrUnexpectedEOF},
		{"last event without blank line", "data: x\ndata: [DONE]", []string{"x\n[DONE]"}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(c.in))
			var got []string
			var err error
			for {
				var d []byte
				d, err = r.Next()
				if err != nil {
					break
				}
				got = append(got, string(d))
			}
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("err %v, want %v", err, c.wantErr)
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestReaderLineTooLong(t *testing.T) {
	in := "data: " + strings.Repeat("x", MaxLine+10) + "\n\n"
	_, err := NewReader(strings.NewReader(in)).Next()
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err %v, want ErrLineTooLong", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"type\":\"token\"}\n\ndata: [DONE]\n\n"))
	f.Add([]byte(": ping\r\n\r\nevent: end\ndata: x\n\n"))
	f.Add([]byte("data"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(strings.NewReader(string(b)))
		for i := 0; i < len(b)+1; i++ {
			d, err := r.Next()
			if err != nil {
				return
			}
			if len(d) > MaxLine {
				t.Fatalf("payload of %d bytes passed the limit", len(d))
			}
		}
		t.Fatal("reader returned more events than input bytes")
	})
}

// event stands in for the wire's events, which this package cannot import.
type event struct {
	Type string `json:"type"`
	T    string `json:"t,omitempty"`
	I    int    `json:"i"`
}

func (e event) EventType() string { return e.Type }
