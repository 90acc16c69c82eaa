package llama

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rbee/rbee/internal/engine"
	"github.com/rbee/rbee/internal/gguf"
	"github.com/rbee/rbee/internal/testmodel"
)

var scriptedReplies = []string{
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n" +
		"<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"Europe/Paris\"}}\n</tool_call>",
	"<think>\nI should say hi.\n</think>\n\nHello!",
	"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Par\n</tool_call>",
	"héllo ☃",
	"",
}

// chatML makes llama.cpp's built-in template detection pick ChatML.
const chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

func loadScripted(t *testing.T, opt testmodel.ScriptOptions) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scripted.gguf")
	if err := testmodel.WriteScripted(path, scriptedReplies, opt); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, Options{Threads: 1, CtxSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// generateAll decodes until EOS, greedily unless s says otherwise, failing
// if the model has not stopped after max tokens.
func generateAll(t *testing.T, m engine.Model, prompt string, max int, s ...engine.Sampling) string {
	t.Helper()
	out, err := runScript(m, prompt, max, append(s, engine.Sampling{})[0])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func runScript(m engine.Model, prompt string, max int, s engine.Sampling) (string, error) {
	toks, err := m.Tokenize(prompt)
	if err != nil {
		return "", err
	}
	seq, err := m.NewSequence(s)
	if err != nil {
		return "", err
	}
	defer seq.Close()
	if err := seq.Prefill(context.Background(), toks); err != nil {
		return "", err
	}
	var out []byte
	for range max {
		tok := seq.Sample()
		if m.IsEOG(tok) {
			return string(out), nil
		}
		piece, err := m.Piece(tok)
		if err != nil {
			return "", err
		}
		out = append(out, piece...)
		if err := seq.Decode(tok); err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("%.40q: no EOS after %d tokens: %q", prompt, max, out)
}

func TestScriptedReplies(t *testing.T) {
	m := loadScripted(t, testmodel.ScriptOptions{})
	mk := testmodel.ReplyMarker
	long := strings.Repeat("filler text, {\"json\": true}, é ☃\n", 8)
	prompts := []string{
		"",
		"Hello",
		"What is the weather in Paris?" + mk(0),
		mk(1) + " two calls please",
		"think " + mk(2) + " first",
		"broken " + mk(3),
		mk(4),
		mk(5) + " says nothing",
		mk(6) + " is no marker: there are six replies",
		mk(3) + " then " + mk(1) + ": the highest wins, not the last",
		mk(2) + long,
		long + mk(4) + long,
		"[reply:4", // not a marker
		engine.PlainChat([]engine.ChatMessage{{Role: "user", Content: "call it"}}),
		engine.PlainChat([]engine.ChatMessage{
			{Role: "user", Content: "call it " + mk(0)},
			{Role: "assistant", Content: scriptedReplies[0]},
			{Role: "tool", Content: "sunny " + mk(4)},
		}),
	}
	for _, p := range prompts {
		want := testmodel.ScriptedReply(scriptedReplies, p)
		if got := generateAll(t, m, p, len(want)+8); got != want {
			t.Errorf("%.60q:\n got %q\nwant %q", p, got, want)
		}
	}
}

// The prompt tokenizes as in the alphabet model, markers aside, and no
// chain token comes out of the tokenizer.
func TestScriptedTokenizer(t *testing.T) {
	m := loadScripted(t, testmodel.ScriptOptions{})
	text := "a \"b\"\n{é☃} <0x41>#400 <0x41>"
	toks, err := m.Tokenize(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Token{testmodel.TokenBOS}
	for _, id := range testmodel.Tokenize(text) {
		want = append(want, engine.Token(id))
	}
	if !slices.Equal(toks, want) {
		t.Errorf("tokens %v\nwant %v", toks, want)
	}
	tokens, _, _, err := testmodel.ScriptedVocab(scriptedReplies, testmodel.ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := slices.Index(tokens, testmodel.ReplyMarker(2))
	toks, _ = m.Tokenize("x" + testmodel.ReplyMarker(2) + "y")
	if want := []engine.Token{testmodel.TokenBOS, engine.Token(testmodel.CharToken('x')), engine.Token(marker), engine.Token(testmodel.CharToken('y'))}; !slices.Equal(toks, want) {
		t.Errorf("marker: tokens %v, want %v", toks, want)
	}
	if piece, _ := m.Piece(engine.Token(marker)); string(piece) != testmodel.ReplyMarker(2) {
		t.Errorf("marker piece %q", piece)
	}
}

// Through a chat template from the GGUF (added as an extra key) the reply
// is the same.
func TestScriptedChatTemplate(t *testing.T) {
	m := loadScripted(t, testmodel.ScriptOptions{
		Name:     "scripted chatml",
		ExtraKVs: []gguf.WriteKV{{Key: "tokenizer.chat_template", Value: chatML}},
	})
	prompt, err := m.ChatPrompt([]engine.ChatMessage{
		{Role: "system", Content: "You are a test."},
		{Role: "user", Content: "Say hi " + testmodel.ReplyMarker(2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(prompt, "<|im_start|>assistant\n") {
		t.Fatalf("not ChatML: %q", prompt)
	}
	if got, want := generateAll(t, m, prompt, 64), scriptedReplies[2]; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// The chosen token leads by so much that sampling at a temperature above 1
// still writes the script.
func TestScriptedSampled(t *testing.T) {
	m := loadScripted(t, testmodel.ScriptOptions{})
	for seed := range uint32(4) {
		s := engine.Sampling{Temperature: 1.5, TopP: 1, Seed: seed}
		for i, want := range scriptedReplies {
			if got := generateAll(t, m, "go "+testmodel.ReplyMarker(i), len(want)+8, s); got != want {
				t.Errorf("seed %d, reply %d: got %q", seed, i, got)
			}
		}
	}
}

// Sequences decoded together in one batch each get their own reply: the
// marker a position attends to is its own sequence's.
func TestScriptedBatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scripted.gguf")
	if err := testmodel.WriteScripted(path, scriptedReplies, testmodel.ScriptOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, Options{Threads: 1, CtxSize: 1024, Slots: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := make([]string, 4)
	errs := make([]error, 4)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			got[i], errs[i] = runScript(m, "batch "+testmodel.ReplyMarker(i), 200, engine.Sampling{})
		})
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != scriptedReplies[i] {
			t.Errorf("sequence %d: %q, %v", i, got[i], errs[i])
		}
	}
}

// Extra tokens: CONTROL ones come out as tokens that llama.cpp writes only
// when asked for special tokens, USER_DEFINED ones as their text, and an
// end-of-generation name (<|eom_id|>) ends the reply.
func TestScriptedExtraTokens(t *testing.T) {
	opt := testmodel.ScriptOptions{
		Specials: []string{"[TOOL_CALLS]", "<|python_tag|>", "<|eom_id|>", "<|im_start|>", "<|im_end|>"},
		Added:    []string{"<think>", "</think>"},
		ExtraKVs: []gguf.WriteKV{{Key: "tokenizer.chat_template", Value: chatML}},
	}
	replies := []string{
		"[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
		"<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}<|eom_id|>",
		"<think>\nI should say hi.\n</think>\n\nHello!",
		"<think>\nNo.\n</think>\n\n[TOOL_CALLS][]",
	}
	path := filepath.Join(t.TempDir(), "extra.gguf")
	if err := testmodel.WriteScripted(path, replies, opt); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path, Options{Threads: 1, CtxSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tokens, _, _, err := testmodel.ScriptedVocab(replies, opt)
	if err != nil {
		t.Fatal(err)
	}
	imStart := engine.Token(slices.Index(tokens, "<|im_start|>"))
	for i, want := range replies {
		prompt, err := m.ChatPrompt([]engine.ChatMessage{{Role: "user", Content: "go " + testmodel.ReplyMarker(i)}})
		if err != nil {
			t.Fatal(err)
		}
		toks, _ := m.Tokenize(prompt)
		if len(toks) < 2 || toks[1] != imStart {
			t.Fatalf("%q tokenized as %v", prompt, toks)
		}
		seq, err := m.NewSequence(engine.Sampling{})
		if err != nil {
			t.Fatal(err)
		}
		if err := seq.Prefill(context.Background(), toks); err != nil {
			t.Fatal(err)
		}
		var text, special []byte
		for range 200 {
			tok := seq.Sample()
			if tok == testmodel.TokenEOS {
				break
			}
			piece, err := m.Piece(tok)
			if err != nil {
				t.Fatal(err)
			}
			text = append(text, piece...)
			if len(piece) == 0 {
				piece = []byte(tokens[tok]) // a CONTROL token, as its text
			}
			special = append(special, piece...)
			if m.IsEOG(tok) {
				break
			}
			if err := seq.Decode(tok); err != nil {
				t.Fatal(err)
			}
		}
		seq.Close()
		// Reply 1 ends with <|eom_id|>, the others with EOS (no text).
		if string(special) != want {
			t.Errorf("reply %d: tokens spell %q, want %q", i, special, want)
		}
		// Piece may or may not write CONTROL tokens; nothing else differs.
		plain := strings.NewReplacer("[TOOL_CALLS]", "", "<|python_tag|>", "", "<|eom_id|>", "").Replace(want)
		if string(text) != plain && string(text) != want {
			t.Errorf("reply %d: text %q, want %q", i, text, plain)
		}
	}
}
