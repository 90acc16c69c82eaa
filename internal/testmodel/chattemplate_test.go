package testmodel

import (
	"path/filepath"
	"testing"

	"github.com/rbee/rbee/internal/gguf"
)

func TestWriteAlphabetChatTemplate(t *testing.T) {
	const tmpl = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
	path := filepath.Join(t.TempDir(), "alphabet-chat.gguf")
	if err := WriteAlphabetChatTemplate(path, tmpl); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Check(path)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := f.KV.String(ChatTemplateKey)
	if !ok || got != tmpl {
		t.Fatalf("%s = %q, %v; want %q", ChatTemplateKey, got, ok, tmpl)
	}
	if name, _ := f.KV.String("general.name"); name != AlphabetName {
		t.Errorf("general.name = %q, want %q", name, AlphabetName)
	}
	if len(f.Tensors) != AlphabetTensors {
		t.Errorf("%d tensors, want %d", len(f.Tensors), AlphabetTensors)
	}
}
