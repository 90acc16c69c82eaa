package toolcall

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
)

// callObject is the JSON of one call in the hermes, llama3, generic and
// mistral array forms.
type callObject struct {
	Name       *string         `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	Parameters json.RawMessage `json:"parameters"`
	ID         json.RawMessage `json:"id"` // any type: only a string is used
}

// decodeCall checks one call object. ok is false for anything that is not
// a call to a known tool with object arguments.
func (s *Stream) decodeCall(raw []byte) (c Call, modelID string, ok bool) {
	var obj callObject
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Name == nil {
		return Call{}, "", false
	}
	args := obj.Arguments
	if args == nil {
		args = obj.Parameters
	}
	a, ok := s.arguments(args)
	if !ok || !s.known(*obj.Name) {
		return Call{}, "", false
	}
	_ = json.Unmarshal(obj.ID, &modelID) // not a string: no model ID
	return Call{Name: *obj.Name, Arguments: a}, modelID, true
}

// arguments is raw as a compact JSON object text.
func (s *Stream) arguments(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "{}", true
	}
	if raw[0] == '"' {
		// Some models write the arguments as a JSON string, as OpenAI
		// sends them.
		var inner string
		if json.Unmarshal(raw, &inner) != nil {
			return "", false
		}
		raw = bytes.TrimSpace([]byte(inner))
	}
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return "", false
	}
	var out bytes.Buffer
	if json.Compact(&out, raw) != nil {
		return "", false
	}
	return out.String(), true
}

func (s *Stream) known(name string) bool {
	_, ok := s.tools[name]
	return name != "" && ok
}

// barePrefix tells whether s starts a call written without its marker:
// { "name" :, with an optional "type": "function", first, as llama.cpp's
// Llama 3 parser accepts, or for Mistral [ { "name" :. The markers of
// Llama 3 and Mistral are control tokens, which a detokenizer may drop.
func barePrefix(f Format, s string) status {
	if f == Mistral {
		return matchTokens(s, []string{"[", "{", `"name"`, ":"})
	}
	if st := matchTokens(s, []string{"{", `"name"`, ":"}); st != invalid {
		return st
	}
	return matchTokens(s, []string{"{", `"type"`, ":", `"function"`, ",", `"name"`, ":"})
}

// matchTokens matches s against tokens separated by optional whitespace.
func matchTokens(s string, tokens []string) status {
	for _, t := range tokens {
		s = trimLeftWS(s)
		if s == "" {
			return needMore
		}
		if strings.HasPrefix(s, t) {
			s = s[len(t):]
			continue
		}
		if strings.HasPrefix(t, s) {
			return needMore
		}
		return invalid
	}
	return complete
}

// builtinCall parses Llama 3's built-in tool form f.call(k=v, ...) that
// follows <|python_tag|>. It returns the call and its length.
func (s *Stream) builtinCall(t string) (Call, int, status) {
	i := 0
	for i < len(t) && isWord(t[i]) {
		i++
	}
	if i == len(t) {
		return Call{}, 0, needMore
	}
	name := t[:i]
	if name == "" {
		return Call{}, 0, invalid
	}
	rest := t[i:]
	switch matchTokens(rest, []string{".", "call", "("}) {
	case needMore:
		return Call{}, 0, needMore
	case invalid:
		return Call{}, 0, invalid
	}
	base := i + strings.IndexByte(rest, '(') + 1
	end, st := s.scan(t, base, ')')
	if st != complete {
		return Call{}, 0, st
	}
	args, ok := keywordArgs(t[base : base+end-1])
	if !ok || !s.known(name) {
		return Call{}, 0, invalid
	}
	return Call{Name: name, Arguments: args}, base + end, complete
}

// keywordArgs turns k=v, ... (JSON values) into a JSON object text, keys in
// the order written.
func keywordArgs(s string) (string, bool) {
	var out strings.Builder
	out.WriteByte('{')
	s = trimLeftWS(s)
	for n := 0; s != ""; n++ {
		k := 0
		for k < len(s) && isWord(s[k]) {
			k++
		}
		if k == 0 {
			return "", false
		}
		key := s[:k]
		s = trimLeftWS(s[k:])
		if !strings.HasPrefix(s, "=") {
			return "", false
		}
		s = trimLeftWS(s[1:])
		end := valueEnd(s)
		var v bytes.Buffer
		if end == 0 || json.Compact(&v, []byte(strings.TrimRight(s[:end], " \t\r\n"))) != nil {
			return "", false
		}
		if n > 0 {
			out.WriteByte(',')
		}
		kj, _ := json.Marshal(key)
		out.Write(kj)
		out.WriteByte(':')
		out.Write(v.Bytes())
		s = trimLeftWS(s[end:])
		if strings.HasPrefix(s, ",") {
			s = trimLeftWS(s[1:])
			if s == "" {
				return "", false
			}
		}
	}
	out.WriteByte('}')
	return out.String(), true
}

// valueEnd is the length of the value at the start of s: up to the first
// comma outside strings and brackets.
func valueEnd(s string) int {
	depth := 0
	inString, escaped := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// mistralCall parses name[ARGS]{...} or name[CALL_ID]id[ARGS]{...}.
func (s *Stream) mistralCall(t string) (Call, string, int, status) {
	i := 0
	for i < len(t) && (isWord(t[i]) || t[i] == '-' || t[i] == '.') {
		i++
	}
	if i == len(t) {
		return Call{}, "", 0, needMore
	}
	if i == 0 {
		return Call{}, "", 0, invalid
	}
	name := t[:i]
	const callID, argsTag = "[CALL_ID]", "[ARGS]"
	var modelID string
	switch st := tagAt(t[i:], callID); {
	case st == complete:
		i += len(callID)
		j := i
		for j < len(t) && isWord(t[j]) {
			j++
		}
		if j == len(t) {
			return Call{}, "", 0, needMore
		}
		modelID, i = t[i:j], j
	case st == needMore && tagAt(t[i:], argsTag) != complete:
		return Call{}, "", 0, needMore
	}
	if st := tagAt(t[i:], argsTag); st != complete {
		return Call{}, "", 0, st
	}
	i += len(argsTag)
	i += len(t[i:]) - len(trimLeftWS(t[i:]))
	end, st := s.scanValue(t, i)
	if st != complete {
		return Call{}, "", 0, st
	}
	args, ok := s.arguments(json.RawMessage(t[i : i+end]))
	if !ok || !s.known(name) {
		return Call{}, "", 0, invalid
	}
	return Call{Name: name, Arguments: args}, modelID, i + end, complete
}

// tagAt tells whether s starts with tag.
func tagAt(s, tag string) status {
	switch {
	case strings.HasPrefix(s, tag):
		return complete
	case strings.HasPrefix(tag, s):
		return needMore
	}
	return invalid
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isWS is C's isspace, which llama.cpp's parsers trim with.
func isWS(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimLeftWS(s string) string {
	i := 0
	for i < len(s) && isWS(s[i]) {
		i++
	}
	return s[i:]
}

func trimRightWS(s string) string {
	i := len(s)
	for i > 0 && isWS(s[i-1]) {
		i--
	}
	return s[:i]
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomAlnum is n random letters and digits.
func randomAlnum(n int) string {
	b := make([]byte, n)
	for i := 0; i < n; {
		var r [32]byte
		_, _ = rand.Read(r[:]) // never fails (crypto/rand documents it)
		for _, x := range r {
			// 248 = 4*62: rejecting above keeps the letters uniform.
			if x < 248 && i < n {
				b[i] = alnum[x%62]
				i++
			}
		}
	}
	return string(b)
}

func newOpenAIID() string { return "call_" + randomAlnum(24) }

func isMistralID(id string) bool {
	if len(id) != 9 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune(alnum, rune(id[i])) {
			return false
		}
	}
	return true
}
