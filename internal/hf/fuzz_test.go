package hf

import (
	"path/filepath"
	"strings"
	"testing"
)

// Whatever name a hub sends, one CheckFileName accepts stays inside the
// directory it is joined to, and ChooseGGUF only ever picks from its input.
func FuzzCheckFileName(f *testing.F) {
	for _, s := range []string{"m.gguf", "a/b/m.Q4_K_M.gguf", "../x", "/abs", `a\b`, "C:/x", "a//b", "x/..", "\x00", "é/ü.gguf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckFileName(name) != nil {
			return
		}
		if !filepath.IsLocal(name) || strings.Contains(name, `\`) || strings.HasPrefix(name, "/") {
			t.Fatalf("accepted %q", name)
		}
		for _, part := range strings.Split(name, "/") {
			if part == ".." || part == "." || part == "" {
				t.Fatalf("accepted %q with element %q", name, part)
			}
		}
		if got, err := ChooseGGUF([]string{name, "other.Q8_0.gguf"}); err == nil && got != name && got != "other.Q8_0.gguf" {
			t.Fatalf("ChooseGGUF made up %q", got)
		}
	})
}
