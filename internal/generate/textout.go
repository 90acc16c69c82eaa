package generate

import (
	"strings"
	"unicode/utf8"
)

// textOut turns token bytes into text pieces that are safe to send: never a
// partial UTF-8 character, never any part of a stop sequence. It holds back
// the bytes that could still become either.
type textOut struct {
	stops []string
	buf   []byte
}

// add appends a token's bytes. It returns the text that can be sent now and
// whether a stop sequence was found (the stop text and anything after it
// are dropped).
func (o *textOut) add(piece []byte) (ready string, stopped bool) {
	o.buf = append(o.buf, piece...)
	if i, ok := o.findStop(); ok {
		ready = valid(o.buf[:i])
		o.buf = o.buf[:0]
		return ready, true
	}
	n := len(o.buf) - max(o.stopHold(), utf8Hold(o.buf))
	// A stop sequence may begin with a continuation byte (stops are
	// matched on bytes), and holding it back must not cut the character
	// it belongs to in two.
	for k := 1; k < utf8.UTFMax && n > 0 && n < len(o.buf) && !utf8.RuneStart(o.buf[n]); k++ {
		n--
	}
	if n <= 0 {
		return "", false
	}
	ready = valid(o.buf[:n])
	o.buf = append(o.buf[:0], o.buf[n:]...)
	return ready, false
}

// flush returns what is held back at the end of generation.
func (o *textOut) flush() string {
	s := valid(o.buf)
	o.buf = o.buf[:0]
	return s
}

func (o *textOut) findStop() (int, bool) {
	best, found := len(o.buf), false
	for _, s := range o.stops {
		if i := strings.Index(string(o.buf), s); i >= 0 && i < best {
			best, found = i, true
		}
	}
	return best, found
}

// stopHold is the length of the longest tail of buf that begins a stop
// sequence.
func (o *textOut) stopHold() int {
	hold := 0
	for _, s := range o.stops {
		for n := min(len(s)-1, len(o.buf)); n > hold; n-- {
			if strings.HasPrefix(s, string(o.buf[len(o.buf)-n:])) {
				hold = n
				break
			}
		}
	}
	return hold
}

// utf8Hold is the length of an incomplete UTF-8 character at the end of b.
func utf8Hold(b []byte) int {
	for i := 1; i <= min(utf8.UTFMax-1, len(b)); i++ {
		c := b[len(b)-i]
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

// valid replaces bytes that can never form a character, so that every piece
// sent is valid UTF-8.
func valid(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }
