package chattemplate

import (
	"fmt"
	"strings"
)

// prepare checks a template's source and rewrites it for the engine:
//
//   - Whitespace control is applied here, as Jinja2 does it with
//     transformers' settings (trim_blocks, lstrip_blocks, "-" and "+"
//     markers, one trailing newline dropped, newlines normalized), and the
//     result is written so the engine's own trimming finds nothing to do.
//     The engine trims the nearest text segment even when another tag
//     stands between it and the block tag ("{% for %}{{ x }}\n" loses the
//     newline after x); Jinja2 only trims text that touches the tag.
//   - Every `| tojson` filter becomes `| rbee_tojson` (see tojsonName).
//   - Brackets and blocks nested deeper than MaxNesting are refused: the
//     engine's parser and evaluator recurse once per level.
//
// It splits the source the way the engine's scanner does (tags open with
// {{, {% or {#; quotes inside a tag hide closers), so a rewrite never lands
// in literal text or in a string.
func prepare(src string) (string, error) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	src = strings.TrimSuffix(src, "\n") // keep_trailing_newline=False
	segs, err := split(src)
	if err != nil {
		return "", err
	}
	var out strings.Builder
	out.Grow(len(src) + len(src)/8)
	blocks := 0
	for i, s := range segs {
		if s.kind != 0 {
			if s.kind == '%' {
				blocks += blockDelta(s.body)
				if blocks > MaxNesting {
					return "", fmt.Errorf("chat template: blocks nested more than %d deep", MaxNesting)
				}
			}
			if s.kind == '#' {
				continue // comments print nothing
			}
			out.WriteString("{" + string(s.kind))
			if err := rewriteTag(&out, s.body); err != nil {
				return "", err
			}
			out.WriteString(string(closing(s.kind)) + "}")
			continue
		}
		start, end := s.start, s.end
		if i > 0 { // the tag before
			switch t := segs[i-1]; {
			case t.right == '-':
				for start < end && isSpace(src[start]) {
					start++
				}
			case t.kind != '{' && t.right != '+' && start < end && src[start] == '\n': // trim_blocks
				start++
			}
		}
		if i+1 < len(segs) { // the tag after
			switch t := segs[i+1]; {
			case t.left == '-':
				for end > start && isSpace(src[end-1]) {
					end--
				}
			case t.kind != '{' && t.left != '+': // lstrip_blocks
				line := strings.LastIndexByte(src[start:end], '\n') + 1 + start
				atLineStart := line > start || start == 0 || src[start-1] == '\n'
				if atLineStart && line < end && allSpace(src[line:end]) {
					end = line
				}
			}
		}
		writeText(&out, src[start:end])
	}
	return out.String(), nil
}

// segment is literal text (kind 0, src[start:end]) or a tag: kind '{', '%'
// or '#', its body, and its whitespace markers ('-', '+' or 0).
type segment struct {
	kind        byte
	start, end  int
	body        string
	left, right byte
}

func closing(kind byte) byte {
	if kind == '{' {
		return '}'
	}
	return kind
}

func split(src string) ([]segment, error) {
	var segs []segment
	text := 0
	i := 0
	for {
		open := strings.IndexByte(src[i:], '{')
		if open < 0 {
			break
		}
		open += i
		if open+1 >= len(src) {
			break
		}
		kind := src[open+1]
		if kind != '{' && kind != '%' && kind != '#' {
			i = open + 1
			continue
		}
		if open > text {
			segs = append(segs, segment{start: text, end: open})
		}
		i = open + 2
		var end int
		if kind == '#' {
			n := strings.Index(src[i:], "#}")
			if n < 0 {
				return nil, fmt.Errorf("chat template: unclosed comment")
			}
			end = i + n
		} else {
			var err error
			if end, err = scanTag(src, i, string(closing(kind))+"}"); err != nil {
				return nil, err
			}
		}
		s := segment{kind: kind, body: src[i:end]}
		if s.body != "" && (s.body[0] == '-' || s.body[0] == '+') {
			s.left, s.body = s.body[0], s.body[1:]
		}
		if n := len(s.body); n > 0 && (s.body[n-1] == '-' || s.body[n-1] == '+') {
			s.right, s.body = s.body[n-1], s.body[:n-1]
		}
		segs = append(segs, s)
		i = end + 2
		text = i
	}
	if text < len(src) {
		segs = append(segs, segment{start: text, end: len(src)})
	}
	return segs, nil
}

// writeText writes literal text so that the engine's trimming cannot touch
// it: a leading newline and trailing spaces or tabs go out as string
// expressions, which the engine never trims.
func writeText(out *strings.Builder, s string) {
	if strings.HasPrefix(s, "\n") {
		out.WriteString(`{{ "\n" }}`)
		s = s[1:]
	}
	body := strings.TrimRight(s, " \t")
	out.WriteString(body)
	if tail := s[len(body):]; tail != "" {
		out.WriteString(`{{ "` + strings.ReplaceAll(tail, "\t", `\t`) + `" }}`)
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\v'
}

func allSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}

// scanTag finds the closer of a tag whose body starts at i, skipping
// quoted strings as the engine's scanner does.
func scanTag(src string, i int, closer string) (int, error) {
	for i < len(src) {
		c := src[i]
		if c == '\'' || c == '"' {
			i++
			for i < len(src) && src[i] != c {
				if src[i] == '\\' && i+1 < len(src) {
					i++
				}
				i++
			}
			i++
			continue
		}
		if strings.HasPrefix(src[i:], closer) {
			return i, nil
		}
		i++
	}
	return 0, fmt.Errorf("chat template: unclosed tag")
}

// rewriteTag copies a tag's body, renaming the tojson filter and checking
// how deeply brackets nest.
func rewriteTag(out *strings.Builder, body string) error {
	depth := 0
	i := 0
	for i < len(body) {
		c := body[i]
		switch c {
		case '\'', '"':
			j := i + 1
			for j < len(body) && body[j] != c {
				if body[j] == '\\' && j+1 < len(body) {
					j++
				}
				j++
			}
			j = min(j+1, len(body))
			out.WriteString(body[i:j])
			i = j
			continue
		case '(', '[', '{':
			depth++
			if depth > MaxNesting {
				return fmt.Errorf("chat template: brackets nested more than %d deep", MaxNesting)
			}
		case ')', ']', '}':
			depth--
		case '|':
			j := i + 1
			for j < len(body) && isSpace(body[j]) {
				j++
			}
			if strings.HasPrefix(body[j:], "tojson") && (j+6 == len(body) || !isIdent(body[j+6])) {
				out.WriteString(body[i:j])
				out.WriteString(tojsonName)
				i = j + len("tojson")
				continue
			}
		}
		out.WriteByte(c)
		i++
	}
	return nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// blockDelta is +1 for a statement that opens a block, -1 for one that
// closes it, and 0 otherwise. `set` opens a block only without "=".
func blockDelta(body string) int {
	s := strings.TrimLeft(body, " \t\n")
	word := s
	if n := strings.IndexFunc(s, func(r rune) bool { return r != '_' && (r < 'a' || r > 'z') }); n >= 0 {
		word = s[:n]
	}
	switch word {
	case "if", "for", "macro", "call", "filter", "block", "raw":
		return 1
	case "set":
		if !strings.Contains(s, "=") {
			return 1
		}
	case "endif", "endfor", "endmacro", "endcall", "endfilter", "endblock", "endraw", "endset":
		return -1
	}
	return 0
}
