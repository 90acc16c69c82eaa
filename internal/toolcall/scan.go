package toolcall

import "strings"

// status is what a scanner knows about a candidate so far.
type status int

const (
	needMore status = iota // a longer text may still decide either way
	complete               // the candidate ends at the returned offset
	invalid                // no continuation makes it a candidate
)

// scanner finds where a JSON object or array ends, or that its text cannot
// be JSON, while the text is still arriving: it resumes where it stopped,
// so a long candidate arriving in many pieces is scanned once, and it
// rejects bad JSON at the first wrong byte, so text that only looks like a
// call goes out as content without waiting for the end of the answer. With
// closeAt != 0 it only matches brackets and strings and ends at the first
// closeAt outside them (the ")" of a Llama 3 built-in call).
type scanner struct {
	active  bool
	base    int  // where the value starts in the text scanned
	closeAt byte // see above
	pos     int  // scanned up to base+pos
	stack   []byte
	st      jsonState
	key     bool   // the string being scanned is an object key
	hex     int    // hex digits left in a \u escape
	lit     string // the rest of true, false or null
	end     int    // the decision, once made
	done    status
}

type jsonState int

const (
	jValue    jsonState = iota // a value is due
	jArrFirst                  // after [: a value or ]
	jObjFirst                  // after {: a key or }
	jObjKey                    // after , in an object: a key
	jColon                     // after a key
	jAfter                     // after a value: , or a closing bracket
	jString
	jEscape
	jHex
	jLit
	jNumMinus // after -
	jNumZero  // after a leading 0
	jNumInt
	jNumDot // after .
	jNumFrac
	jNumE     // after e
	jNumESign // after e+ or e-
	jNumExp
	// bracket mode (closeAt != 0)
	bOutside
	bString
	bEscape
)

// scanValue finds the end of the JSON object or array at t[base:], relative
// to base.
func (s *Stream) scanValue(t string, base int) (int, status) {
	if base >= len(t) {
		return 0, needMore
	}
	if t[base] != '{' && t[base] != '[' {
		return 0, invalid
	}
	return s.scan(t, base, 0)
}

func (s *Stream) scan(t string, base int, closeAt byte) (int, status) {
	sc := &s.sc
	if !sc.active || sc.base != base || sc.closeAt != closeAt {
		*sc = scanner{active: true, base: base, closeAt: closeAt, stack: sc.stack[:0]}
		if closeAt != 0 {
			sc.st = bOutside
		}
	}
	if sc.done == needMore {
		sc.end, sc.done = sc.run(t[base:])
	}
	return sc.end, sc.done
}

func (sc *scanner) run(v string) (int, status) {
	for sc.pos < len(v) {
		c := v[sc.pos]
		if sc.st >= bOutside {
			if end, st := sc.bracketStep(c); st != needMore {
				return end, st
			}
			sc.pos++
			continue
		}
		switch sc.st {
		case jValue:
			switch {
			case isJSONWS(c):
			case c == '{':
				sc.stack, sc.st = append(sc.stack, '}'), jObjFirst
			case c == '[':
				sc.stack, sc.st = append(sc.stack, ']'), jArrFirst
			case c == '"':
				sc.st, sc.key = jString, false
			case c == '-':
				sc.st = jNumMinus
			case c == '0':
				sc.st = jNumZero
			case c >= '1' && c <= '9':
				sc.st = jNumInt
			case c == 't':
				sc.st, sc.lit = jLit, "rue"
			case c == 'f':
				sc.st, sc.lit = jLit, "alse"
			case c == 'n':
				sc.st, sc.lit = jLit, "ull"
			default:
				return 0, invalid
			}
		case jArrFirst:
			if c == ']' {
				sc.st = jAfter
				continue
			}
			if !isJSONWS(c) {
				sc.st = jValue
				continue
			}
		case jObjFirst, jObjKey:
			switch {
			case isJSONWS(c):
			case c == '"':
				sc.st, sc.key = jString, true
			case c == '}' && sc.st == jObjFirst:
				sc.st = jAfter
				continue
			default:
				return 0, invalid
			}
		case jColon:
			switch {
			case isJSONWS(c):
			case c == ':':
				sc.st = jValue
			default:
				return 0, invalid
			}
		case jAfter:
			top := sc.stack[len(sc.stack)-1]
			switch {
			case isJSONWS(c):
			case c == ',' && top == '}':
				sc.st = jObjKey
			case c == ',':
				sc.st = jValue
			case c == top:
				sc.stack = sc.stack[:len(sc.stack)-1]
				if len(sc.stack) == 0 {
					return sc.pos + 1, complete
				}
			default:
				return 0, invalid
			}
		case jString:
			switch {
			case c == '"' && sc.key:
				sc.st = jColon
			case c == '"':
				sc.st = jAfter
			case c == '\\':
				sc.st = jEscape
			case c < 0x20:
				return 0, invalid
			}
		case jEscape:
			switch {
			case c == 'u':
				sc.st, sc.hex = jHex, 4
			case strings.IndexByte(`"\\/bfnrt`, c) >= 0:
				sc.st = jString
			default:
				return 0, invalid
			}
		case jHex:
			if !isHex(c) {
				return 0, invalid
			}
			if sc.hex--; sc.hex == 0 {
				sc.st = jString
			}
		case jLit:
			if c != sc.lit[0] {
				return 0, invalid
			}
			if sc.lit = sc.lit[1:]; sc.lit == "" {
				sc.st = jAfter
			}
		case jNumMinus:
			switch {
			case c == '0':
				sc.st = jNumZero
			case isDigit(c):
				sc.st = jNumInt
			default:
				return 0, invalid
			}
		case jNumDot, jNumESign:
			if !isDigit(c) {
				return 0, invalid
			}
			if sc.st == jNumDot {
				sc.st = jNumFrac
			} else {
				sc.st = jNumExp
			}
		case jNumE:
			switch {
			case c == '+' || c == '-':
				sc.st = jNumESign
			case isDigit(c):
				sc.st = jNumExp
			default:
				return 0, invalid
			}
		default: // jNumZero, jNumInt, jNumFrac, jNumExp: the number may end here
			switch {
			case isDigit(c) && sc.st != jNumZero:
			case c == '.' && (sc.st == jNumZero || sc.st == jNumInt):
				sc.st = jNumDot
			case (c == 'e' || c == 'E') && sc.st != jNumExp:
				sc.st = jNumE
			default:
				sc.st = jAfter
				continue
			}
		}
		sc.pos++
	}
	return 0, needMore
}

// bracketStep is one byte of bracket mode.
func (sc *scanner) bracketStep(c byte) (int, status) {
	switch sc.st {
	case bEscape:
		sc.st = bString
	case bString:
		switch c {
		case '\\':
			sc.st = bEscape
		case '"':
			sc.st = bOutside
		}
	default:
		switch c {
		case '"':
			sc.st = bString
		case '{':
			sc.stack = append(sc.stack, '}')
		case '[':
			sc.stack = append(sc.stack, ']')
		case '}', ']':
			if len(sc.stack) == 0 || sc.stack[len(sc.stack)-1] != c {
				return 0, invalid
			}
			sc.stack = sc.stack[:len(sc.stack)-1]
		default:
			if c == sc.closeAt && len(sc.stack) == 0 {
				return sc.pos + 1, complete
			}
		}
	}
	return 0, needMore
}

func isJSONWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }
