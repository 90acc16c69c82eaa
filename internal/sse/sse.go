// Package sse writes and reads the Server-Sent Events streams of every rbee
// program: each event is one "data: <json>" line with an "event:" line naming
// its type, the stream ends with "data: [DONE]", and ": ping" comments keep a
// quiet stream alive.
package sse

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Done is the payload of the last event of every stream.
const Done = "[DONE]"

// Writer writes events to an HTTP response and flushes each one.
type Writer struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	buf bytes.Buffer
}

// NewWriter sends the event-stream headers and returns a Writer.
func NewWriter(w http.ResponseWriter) *Writer {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw := &Writer{w: w, rc: http.NewResponseController(w)}
	_ = sw.rc.Flush()
	return sw
}

// SetWriteDeadline bounds the next writes, so that a reader that stops
// reading cannot hold the writer forever.
func (s *Writer) SetWriteDeadline(t time.Time) error { return s.rc.SetWriteDeadline(t) }

// Typed is an event that knows its own type (every wire event does), so the
// "event:" line and the JSON's "type" field cannot disagree.
type Typed interface {
	EventType() string
}

// Event writes ev as one event.
func (s *Writer) Event(ev Typed) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return s.Raw(ev.EventType(), data)
}

// Raw writes an already encoded JSON object as one event.
func (s *Writer) Raw(typ string, data []byte) error {
	if err := s.Queue(typ, data); err != nil {
		return err
	}
	return s.Flush()
}

// Queue writes an event without flushing it, so that a reader that fell
// behind gets several events in one write; Flush sends them.
func (s *Writer) Queue(typ string, data []byte) error {
	s.buf.Reset()
	if typ != "" && !strings.ContainsAny(typ, "\r\n") {
		fmt.Fprintf(&s.buf, "event: %s\n", typ)
	}
	s.buf.WriteString("data: ")
	s.buf.Write(data)
	s.buf.WriteString("\n\n")
	_, err := s.w.Write(s.buf.Bytes())
	return err
}

// Flush sends what Queue wrote.
func (s *Writer) Flush() error { return s.rc.Flush() }

// Done writes the closing "data: [DONE]".
func (s *Writer) Done() error {
	s.buf.Reset()
	s.buf.WriteString("data: " + Done + "\n\n")
	return s.flush()
}

// Ping writes a keep-alive comment.
func (s *Writer) Ping() error {
	s.buf.Reset()
	s.buf.WriteString(": ping\n\n")
	return s.flush()
}

func (s *Writer) flush() error {
	if _, err := s.w.Write(s.buf.Bytes()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// MaxLine bounds one line of a stream a Reader accepts.
const MaxLine = 1 << 20

// ErrLineTooLong reports a line longer than MaxLine.
var ErrLineTooLong = errors.New("sse: line too long")

// Reader reads the data payloads of a stream.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader { return &Reader{br: bufio.NewReaderSize(r, 16<<10)} }

// Next returns the data of the next event. Multi-line data is joined with
// "\n" as the SSE specification says. It returns io.EOF after [DONE], and
// io.ErrUnexpectedEOF when the stream ends without it.
func (r *Reader) Next() ([]byte, error) {
	var data []byte
	have := false
	for {
		line, err := r.line()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if have {
					// An event cut off before its blank line still counts.
					return r.finish(data)
				}
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if have {
				return r.finish(data)
			}
			continue
		}
		if line[0] == ':' {
			continue // comment, e.g. ": ping"
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		if string(field) != "data" {
			continue // event:, id:, retry: carry nothing we need
		}
		if have {
			data = append(data, '\n')
		}
		data = append(data, value...)
		have = true
		if len(data) > MaxLine {
			return nil, ErrLineTooLong
		}
	}
}

func (r *Reader) finish(data []byte) ([]byte, error) {
	if string(data) == Done {
		return nil, io.EOF
	}
	return data, nil
}

func (r *Reader) line() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > MaxLine {
			return nil, ErrLineTooLong
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 && errors.Is(err, io.EOF) {
			break
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}
