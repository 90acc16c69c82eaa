package toolcall

// A small GBNF interpreter for the tests: it parses the grammars Grammar
// writes, tells whether a text is in the language, and samples texts from
// it, so the tests can check that what the grammar lets a model write is
// what Parse reads back as calls.

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"
)

type gnode struct {
	kind     byte // 'l' literal, 'c' class, '.' any, 'r' rule, 's' sequence, 'a' alternatives, '*' repetition
	lit      []rune
	ranges   [][2]rune
	negated  bool
	name     string
	kids     []*gnode
	min, max int // repetition; max -1 is unbounded
}

type gbnf struct {
	rules map[string]*gnode
	memo  map[string][]int
	in    []rune
}

func parseGBNF(src string) (*gbnf, error) {
	g := &gbnf{rules: map[string]*gnode{}}
	for _, line := range strings.Split(src, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, body, ok := strings.Cut(line, " ::= ")
		if !ok {
			return nil, fmt.Errorf("bad rule line %q", line)
		}
		p := &gparser{s: []rune(body)}
		n, err := p.alts()
		if err != nil {
			return nil, fmt.Errorf("rule %s: %v", name, err)
		}
		if p.i != len(p.s) {
			return nil, fmt.Errorf("rule %s: trailing %q", name, string(p.s[p.i:]))
		}
		g.rules[name] = n
	}
	for name := range g.rules {
		if err := g.check(g.rules[name]); err != nil {
			return nil, fmt.Errorf("rule %s: %v", name, err)
		}
	}
	if g.rules["root"] == nil {
		return nil, fmt.Errorf("no root")
	}
	return g, nil
}

func (g *gbnf) check(n *gnode) error {
	if n.kind == 'r' && g.rules[n.name] == nil {
		return fmt.Errorf("undefined rule %s", n.name)
	}
	for _, k := range n.kids {
		if err := g.check(k); err != nil {
			return err
		}
	}
	return nil
}

type gparser struct {
	s []rune
	i int
}

func (p *gparser) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *gparser) alts() (*gnode, error) {
	var alts []*gnode
	for {
		seq, err := p.seq()
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		p.ws()
		if p.i < len(p.s) && p.s[p.i] == '|' {
			p.i++
			continue
		}
		return &gnode{kind: 'a', kids: alts}, nil
	}
}

func (p *gparser) seq() (*gnode, error) {
	seq := &gnode{kind: 's'}
	for {
		p.ws()
		if p.i == len(p.s) || p.s[p.i] == '|' || p.s[p.i] == ')' {
			return seq, nil
		}
		var n *gnode
		switch c := p.s[p.i]; {
		case c == '"':
			p.i++
			n = &gnode{kind: 'l'}
			for p.i < len(p.s) && p.s[p.i] != '"' {
				r, err := p.char()
				if err != nil {
					return nil, err
				}
				n.lit = append(n.lit, r)
			}
			if p.i == len(p.s) {
				return nil, fmt.Errorf("unterminated literal")
			}
			p.i++
		case c == '[':
			p.i++
			n = &gnode{kind: 'c'}
			if p.i < len(p.s) && p.s[p.i] == '^' {
				n.negated = true
				p.i++
			}
			for p.i < len(p.s) && p.s[p.i] != ']' {
				lo, err := p.char()
				if err != nil {
					return nil, err
				}
				hi := lo
				if p.i+1 < len(p.s) && p.s[p.i] == '-' && p.s[p.i+1] != ']' {
					p.i++
					if hi, err = p.char(); err != nil {
						return nil, err
					}
				}
				n.ranges = append(n.ranges, [2]rune{lo, hi})
			}
			if p.i == len(p.s) {
				return nil, fmt.Errorf("unterminated class")
			}
			p.i++
		case c == '.':
			p.i++
			n = &gnode{kind: '.'}
		case c == '(':
			p.i++
			inner, err := p.alts()
			if err != nil {
				return nil, err
			}
			if p.i == len(p.s) || p.s[p.i] != ')' {
				return nil, fmt.Errorf("unclosed group")
			}
			p.i++
			n = inner
		case c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := p.i
			for p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z' || p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= '0' && p.s[p.i] <= '9') {
				p.i++
			}
			n = &gnode{kind: 'r', name: string(p.s[j:p.i])}
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
		// postfix operators
		for p.i < len(p.s) {
			switch p.s[p.i] {
			case '*':
				n = &gnode{kind: '*', kids: []*gnode{n}, min: 0, max: -1}
			case '+':
				n = &gnode{kind: '*', kids: []*gnode{n}, min: 1, max: -1}
			case '?':
				n = &gnode{kind: '*', kids: []*gnode{n}, min: 0, max: 1}
			case '{':
				end := p.i + strings.IndexRune(string(p.s[p.i:]), '}')
				spec := string(p.s[p.i+1 : end])
				lo, hi, comma := strings.Cut(spec, ",")
				mn, err := strconv.Atoi(lo)
				if err != nil {
					return nil, err
				}
				mx := mn
				if comma {
					mx = -1
					if hi != "" {
						if mx, err = strconv.Atoi(hi); err != nil {
							return nil, err
						}
					}
				}
				n = &gnode{kind: '*', kids: []*gnode{n}, min: mn, max: mx}
				p.i = end
			default:
				goto done
			}
			p.i++
		}
	done:
		seq.kids = append(seq.kids, n)
	}
}

func (p *gparser) char() (rune, error) {
	c := p.s[p.i]
	p.i++
	if c != '\\' {
		return c, nil
	}
	if p.i == len(p.s) {
		return 0, fmt.Errorf("dangling escape")
	}
	e := p.s[p.i]
	p.i++
	hex := func(n int) (rune, error) {
		if p.i+n > len(p.s) {
			return 0, fmt.Errorf("short escape")
		}
		v, err := strconv.ParseUint(string(p.s[p.i:p.i+n]), 16, 32)
		p.i += n
		return rune(v), err
	}
	switch e {
	case 'n':
		return '\n', nil
	case 't':
		return '\t', nil
	case 'r':
		return '\r', nil
	case 'x':
		return hex(2)
	case 'u':
		return hex(4)
	case 'U':
		return hex(8)
	}
	return e, nil
}

func (n *gnode) inClass(r rune) bool {
	in := false
	for _, rg := range n.ranges {
		in = in || r >= rg[0] && r <= rg[1]
	}
	return in != n.negated
}

// accepts tells whether text is in the grammar's language.
func (g *gbnf) accepts(text string) bool {
	g.in, g.memo = []rune(text), map[string][]int{}
	for _, e := range g.match(g.rules["root"], 0) {
		if e == len(g.in) {
			return true
		}
	}
	return false
}

// match is every position where n, started at pos, can end.
func (g *gbnf) match(n *gnode, pos int) []int {
	switch n.kind {
	case 'l':
		if pos+len(n.lit) <= len(g.in) && string(g.in[pos:pos+len(n.lit)]) == string(n.lit) {
			return []int{pos + len(n.lit)}
		}
		return nil
	case 'c':
		if pos < len(g.in) && n.inClass(g.in[pos]) {
			return []int{pos + 1}
		}
		return nil
	case '.':
		if pos < len(g.in) {
			return []int{pos + 1}
		}
		return nil
	case 'r':
		key := n.name + "@" + strconv.Itoa(pos)
		if ends, ok := g.memo[key]; ok {
			return ends
		}
		g.memo[key] = nil
		ends := g.match(g.rules[n.name], pos)
		g.memo[key] = ends
		return ends
	case 's':
		cur := []int{pos}
		for _, k := range n.kids {
			cur = g.each(k, cur)
		}
		return cur
	case 'a':
		var out []int
		for _, k := range n.kids {
			out = union(out, g.match(k, pos))
		}
		return out
	default: // repetition
		out, cur := []int(nil), []int{pos}
		if n.min == 0 {
			out = []int{pos}
		}
		for i := 1; len(cur) > 0 && (n.max < 0 || i <= n.max); i++ {
			next := g.each(n.kids[0], cur)
			var grown []int
			for _, e := range next {
				if !contains(cur, e) {
					grown = append(grown, e)
				}
			}
			cur = grown
			if i >= n.min {
				out = union(out, cur)
			}
			if i > len(g.in)+1 {
				break
			}
		}
		return out
	}
}

func (g *gbnf) each(n *gnode, starts []int) []int {
	var out []int
	for _, s := range starts {
		out = union(out, g.match(n, s))
	}
	return out
}

func union(a, b []int) []int {
	for _, x := range b {
		if !contains(a, x) {
			a = append(a, x)
		}
	}
	return a
}

func contains(a []int, x int) bool {
	for _, y := range a {
		if y == x {
			return true
		}
	}
	return false
}

// sample writes a random text of the grammar's language.
func (g *gbnf) sample(r *rand.Rand) string {
	var sb strings.Builder
	g.gen(g.rules["root"], r, &sb, 0)
	return sb.String()
}

var sampleRunes = []rune("aZ09 _-.,:;\"\\/{}[]\n\té東🙂")

func (g *gbnf) gen(n *gnode, r *rand.Rand, sb *strings.Builder, depth int) {
	switch n.kind {
	case 'l':
		sb.WriteString(string(n.lit))
	case 'c', '.':
		for {
			c := sampleRunes[r.IntN(len(sampleRunes))]
			if n.kind == '.' || n.inClass(c) {
				sb.WriteRune(c)
				return
			}
			if !n.negated && r.IntN(4) == 0 {
				rg := n.ranges[r.IntN(len(n.ranges))]
				if c = rg[0] + rune(r.IntN(int(rg[1]-rg[0])+1)); utf8.ValidRune(c) {
					sb.WriteRune(c)
					return
				}
			}
		}
	case 'r':
		g.gen(g.rules[n.name], r, sb, depth+1)
	case 's':
		for _, k := range n.kids {
			g.gen(k, r, sb, depth)
		}
	case 'a':
		k := n.kids[r.IntN(len(n.kids))]
		if depth > 12 {
			k = n.kids[0]
		}
		g.gen(k, r, sb, depth)
	default:
		count := n.min + r.IntN(3)
		if n.max >= 0 && count > n.max {
			count = n.max
		}
		if depth > 12 {
			count = n.min
		}
		for range count {
			g.gen(n.kids[0], r, sb, depth)
		}
	}
}
