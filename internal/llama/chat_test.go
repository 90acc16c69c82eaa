package llama

import (
	"path/filepath"
	"testing"

	"github.com/rbee/rbee/internal/engine"
)

func TestChatTemplate(t *testing.T) {
	m, err := Load(filepath.Join(sharedModels, "ggml-vocab-phi-3.gguf"), Options{VocabOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	msgs := []engine.ChatMessage{
		{Role: "user", Content: "Hello!"},
		{Role: "assistant", Content: "Hi, how can I help?"},
		{Role: "user", Content: "Tell me a story."},
	}
	got, err := m.ChatPrompt(msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|user|>\nHello!<|end|>\n<|assistant|>\nHi, how can I help?<|end|>\n<|user|>\nTell me a story.<|end|>\n<|assistant|>\n"
	if got != want {
		t.Fatalf("rendered %q\nwant     %q", got, want)
	}
	toks, err := m.Tokenize(got)
	if err != nil {
		t.Fatal(err)
	}
	// Special tokens in the rendered text are parsed as such (the shared
	// models' README lists these 21 ids), after the model's BOS.
	wantToks := []engine.Token{32010, 15043, 29991, 32007, 32001, 6324, 29892, 920, 508, 306, 1371, 29973, 32007, 32010, 24948, 592, 263, 5828, 29889, 32007, 32001}
	if len(toks) != len(wantToks)+1 || toks[0] != 1 || !equal(toks[1:], wantToks) {
		t.Fatalf("tokens %v", toks)
	}
}

func TestChatWithoutTemplate(t *testing.T) {
	m := loadShared(t, "stories260K.gguf")
	got, err := m.ChatPrompt([]engine.ChatMessage{{Role: "user", Content: "Hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if got != "user: Hi\nassistant:" {
		t.Fatalf("fallback %q", got)
	}
}
