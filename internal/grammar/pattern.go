package grammar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// patternGBNF turns a regular expression (a practical subset of ECMA 262
// and RE2 syntax: literals, escapes, classes, ., groups, alternation and
// quantifiers, ^ and $ at the ends) into a GBNF expression of the JSON
// string contents (without the quotes) of strings the pattern matches
// whole. Backreferences, lookaround, word boundaries and inner anchors are
// errors.
func patternGBNF(pattern string) (string, error) {
	rs := []rune(pattern)
	if len(rs) > 0 && rs[0] == '^' {
		rs = rs[1:]
	}
	if n := len(rs); n > 0 && rs[n-1] == '$' {
		bs := 0
		for i := n - 2; i >= 0 && rs[i] == '\\'; i-- {
			bs++
		}
		if bs%2 == 0 {
			rs = rs[:n-1]
		}
	}
	p := &reParser{src: rs}
	expr, err := p.alt(0)
	if err != nil {
		return "", err
	}
	if p.pos < len(p.src) {
		return "", fmt.Errorf("unexpected %q in pattern", p.src[p.pos])
	}
	return "(" + expr + ")", nil
}

type reParser struct {
	src []rune
	pos int
}

func (p *reParser) peek() (rune, bool) {
	if p.pos < len(p.src) {
		return p.src[p.pos], true
	}
	return 0, false
}

func (p *reParser) alt(depth int) (string, error) {
	if depth > 50 {
		return "", errors.New("pattern nests too deep")
	}
	var alts []string
	for {
		seq, err := p.seq(depth)
		if err != nil {
			return "", err
		}
		alts = append(alts, seq)
		if r, ok := p.peek(); ok && r == '|' {
			p.pos++
			continue
		}
		return strings.Join(alts, " | "), nil
	}
}

func (p *reParser) seq(depth int) (string, error) {
	var items []string
	for {
		r, ok := p.peek()
		if !ok || r == '|' || r == ')' {
			break
		}
		atom, err := p.atom(depth)
		if err != nil {
			return "", err
		}
		atom, err = p.quantifier(atom)
		if err != nil {
			return "", err
		}
		items = append(items, atom)
	}
	if len(items) == 0 {
		return `""`, nil
	}
	return strings.Join(items, " "), nil
}

func (p *reParser) atom(depth int) (string, error) {
	r := p.src[p.pos]
	p.pos++
	switch r {
	case '(':
		if strings.HasPrefix(string(p.src[p.pos:]), "?:") {
			p.pos += 2
		} else if strings.HasPrefix(string(p.src[p.pos:]), "?<") && !strings.HasPrefix(string(p.src[p.pos:]), "?<=") && !strings.HasPrefix(string(p.src[p.pos:]), "?<!") {
			end := strings.IndexRune(string(p.src[p.pos:]), '>')
			if end < 0 {
				return "", errors.New("unterminated group name")
			}
			p.pos += utf8.RuneCountInString(string(p.src[p.pos:])[:end+1])
		} else if r, ok := p.peek(); ok && r == '?' {
			return "", errors.New("lookaround and group flags are not supported")
		}
		inner, err := p.alt(depth + 1)
		if err != nil {
			return "", err
		}
		if r, ok := p.peek(); !ok || r != ')' {
			return "", errors.New("missing )")
		}
		p.pos++
		return "(" + inner + ")", nil
	case '[':
		return p.class()
	case '.':
		return `[^"\\\x7F\x00-\x1F]`, nil
	case '\\':
		return p.escape()
	case '^', '$':
		return "", errors.New("anchors inside the pattern are not supported")
	case '*', '+', '?', '{':
		if r == '{' {
			// A brace that starts no quantifier is a literal in ECMA 262
			// but an error in RE2; refuse it rather than guess.
			return "", errors.New("a quantifier without anything to repeat")
		}
		return "", errors.New("a quantifier without anything to repeat")
	case ')':
		return "", errors.New("unbalanced )")
	}
	return charLiteral(r), nil
}

// charLiteral is r as JSON string contents, as a GBNF literal.
func charLiteral(r rune) string {
	q := quoteJSON(string(r))
	return literal(q[1 : len(q)-1])
}

func (p *reParser) quantifier(atom string) (string, error) {
	r, ok := p.peek()
	if !ok {
		return atom, nil
	}
	var out string
	switch r {
	case '*', '+', '?':
		p.pos++
		out = atom + string(r)
	case '{':
		end := strings.IndexRune(string(p.src[p.pos:]), '}')
		if end < 0 {
			return "", errors.New("unterminated {")
		}
		body := string(p.src[p.pos:])[1:end]
		lo, hi, ok := parseCounts(body)
		if !ok {
			return "", fmt.Errorf("bad quantifier {%s}", body)
		}
		if lo > maxCount || hi > maxCount {
			return "", fmt.Errorf("repetition counts above %d are not supported", maxCount)
		}
		if hi >= 0 && lo > hi {
			return "", fmt.Errorf("bad quantifier {%s}", body)
		}
		p.pos += utf8.RuneCountInString(string(p.src[p.pos:])[:end+1])
		out = repeat(atom, lo, hi)
	default:
		return atom, nil
	}
	if r, ok := p.peek(); ok {
		switch r {
		case '?': // lazy: the same strings
			p.pos++
		case '+', '*', '{':
			return "", errors.New("nested quantifiers are not supported")
		}
	}
	return out, nil
}

func parseCounts(s string) (lo, hi int, ok bool) {
	a, b, comma := strings.Cut(s, ",")
	lo, err := strconv.Atoi(a)
	if err != nil || lo < 0 {
		return 0, 0, false
	}
	if !comma {
		return lo, lo, true
	}
	if b == "" {
		return lo, -1, true
	}
	hi, err = strconv.Atoi(b)
	if err != nil || hi < 0 {
		return 0, 0, false
	}
	return lo, hi, true
}

// forbidden are the characters a grammar class never writes raw inside a
// JSON string.
const forbidden = `"\\\x7F\x00-\x1F`

// readEscape reads an escape after its backslash: one character r, or
// (r < 0) a class escape, as GBNF class ranges, negated or not.
func (p *reParser) readEscape() (r rune, ranges string, negate bool, err error) {
	c, ok := p.peek()
	if !ok {
		return 0, "", false, errors.New("pattern ends with \\")
	}
	p.pos++
	switch c {
	case 'd':
		return -1, "0-9", false, nil
	case 'w':
		return -1, "a-zA-Z0-9_", false, nil
	case 's':
		// Only the space: the other whitespace needs JSON escapes.
		return -1, " ", false, nil
	case 'D':
		return -1, "0-9", true, nil
	case 'W':
		return -1, "a-zA-Z0-9_", true, nil
	case 'S':
		return -1, " ", true, nil
	case 'n':
		return '\n', "", false, nil
	case 't':
		return '\t', "", false, nil
	case 'r':
		return '\r', "", false, nil
	case 'f':
		return '\f', "", false, nil
	case 'v':
		return '\v', "", false, nil
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			return 0, "", false, errors.New("short \\" + string(c) + " escape")
		}
		v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+n]), 16, 32)
		if err != nil {
			return 0, "", false, errors.New("bad \\" + string(c) + " escape")
		}
		p.pos += n
		return rune(v), "", false, nil
	}
	if c < 0x80 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		return 0, "", false, fmt.Errorf("escape \\%c is not supported", c)
	}
	return c, "", false, nil
}

// escape is an escape outside a class.
func (p *reParser) escape() (string, error) {
	r, ranges, negate, err := p.readEscape()
	switch {
	case err != nil:
		return "", err
	case r >= 0:
		return charLiteral(r), nil
	case negate:
		return "[^" + ranges + forbidden + "]", nil
	}
	return "[" + ranges + "]", nil
}

// class reads a character class after its [. A positive class writes
// its characters raw, less the ones JSON must escape (a restriction); a
// negated class also excludes those.
func (p *reParser) class() (string, error) {
	negate := false
	if r, ok := p.peek(); ok && r == '^' {
		negate = true
		p.pos++
	}
	// item reads one character, or a class escape (r < 0).
	item := func() (rune, string, error) {
		r := p.src[p.pos]
		p.pos++
		if r == '[' && p.pos < len(p.src) && p.src[p.pos] == ':' {
			return 0, "", errors.New("POSIX classes are not supported")
		}
		if r != '\\' {
			return r, "", nil
		}
		r, ranges, neg, err := p.readEscape()
		if err == nil && neg {
			err = errors.New("negated class escapes inside [] are not supported")
		}
		return r, ranges, err
	}
	var sb strings.Builder
	first := true
	for {
		r, ok := p.peek()
		if !ok {
			return "", errors.New("missing ]")
		}
		if r == ']' && !first {
			p.pos++
			break
		}
		first = false
		lo, ranges, err := item()
		if err != nil {
			return "", err
		}
		if lo < 0 {
			sb.WriteString(ranges)
			continue
		}
		hi := lo
		if p.pos+1 < len(p.src) && p.src[p.pos] == '-' && p.src[p.pos+1] != ']' {
			p.pos++
			if hi, ranges, err = item(); err != nil {
				return "", err
			}
			if hi < lo {
				return "", errors.New("bad class range")
			}
		}
		sb.WriteString(classRange(lo, hi))
	}
	body := sb.String()
	if negate {
		return "[^" + body + forbidden + "]", nil
	}
	if body == "" {
		return "", errors.New("a class of only characters JSON escapes is not supported")
	}
	return "[" + body + "]", nil
}

// classRange writes lo..hi for a GBNF class, less the characters JSON
// escapes (a negated class excludes them anyway).
func classRange(lo, hi rune) string {
	var sb strings.Builder
	add := func(a, b rune) {
		switch {
		case a > b:
		case a == b:
			sb.WriteString(classChar(a))
		default:
			sb.WriteString(classChar(a) + "-" + classChar(b))
		}
	}
	a := max(lo, 0x20)
	for _, c := range []rune{'"', '\\', 0x7F} {
		if c >= a && c <= hi {
			add(a, c-1)
			a = c + 1
		}
	}
	add(a, hi)
	return sb.String()
}
