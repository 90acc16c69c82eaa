package modelref

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rbee/rbee/internal/wire"
)

func TestParseGood(t *testing.T) {
	long := strings.Repeat("a", 300) + ".gguf"
	for _, tc := range []struct {
		in   string
		kind Kind
		id   string
		path string
	}{
		{in: "tinyllama", kind: KindID, id: "tinyllama"},
		{in: "Qwen2.5-0.5B_instruct", kind: KindID, id: "Qwen2.5-0.5B_instruct"},
		{in: "a", kind: KindID, id: "a"},
		{in: strings.Repeat("x", 128), kind: KindID, id: strings.Repeat("x", 128)},
		{in: "/models/stories260K.gguf", kind: KindPath, id: "stories260K", path: "/models/stories260K.gguf"},
		{in: "/models//x/../Tiny.GGUF", kind: KindPath, id: "Tiny", path: "/models/Tiny.GGUF"},
		{in: "./m.gguf", kind: KindPath, id: "m", path: "m.gguf"},
		{in: "../up/m.gguf", kind: KindPath, id: "m", path: "../up/m.gguf"},
		{in: "~/models/m.gguf", kind: KindPath, id: "m", path: "~/models/m.gguf"},
		{in: "plain.gguf", kind: KindPath, id: "plain", path: "plain.gguf"},
		{in: "/m/my model (v2).gguf", kind: KindPath, id: "my-model--v2-", path: "/m/my model (v2).gguf"},
		{in: "/m/..hidden...q8.gguf", kind: KindPath, id: "hidden.q8", path: "/m/..hidden...q8.gguf"},
		{in: "/m/trailing. .gguf", kind: KindPath, id: "trailing.-", path: "/m/trailing. .gguf"},
		{in: "/m/ünïcode.gguf", kind: KindPath, id: "n-code", path: "/m/ünïcode.gguf"},
		{in: "../../etc/passwd.gguf", kind: KindPath, id: "passwd", path: "../../etc/passwd.gguf"},
		{in: "hf:TheBloke/TinyLlama-1.1B-GGUF", kind: KindHF, id: "TheBloke--TinyLlama-1.1B-GGUF"},
		{in: "hf:owner/repo:model.Q4_K_M.gguf", kind: KindHF, id: "owner--repo--model.Q4_K_M"},
		{in: "hf:owner/repo:sub/dir/m.gguf", kind: KindHF, id: "owner--repo--sub--dir--m"},
	} {
		r, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if r.Kind != tc.kind || r.ID != tc.id || r.Path != tc.path {
			t.Errorf("Parse(%q) = %v %q %q, want %v %q %q", tc.in, r.Kind, r.ID, r.Path, tc.kind, tc.id, tc.path)
		}
		checkSafeID(t, tc.in, r.ID)
	}

	r, err := Parse("/m/" + long)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.ID) != wire.MaxModelID {
		t.Errorf("long file name: id %q is %d bytes, want %d", r.ID, len(r.ID), wire.MaxModelID)
	}
	other, _ := Parse("/m/" + strings.Repeat("a", 301) + ".gguf")
	if other.ID == r.ID {
		t.Errorf("two long names share the id %q", r.ID)
	}
}

func TestParseHostile(t *testing.T) {
	for _, in := range []string{
		"",
		"..%2f..%2fetc",
		"..",
		".",
		"a/../../b",
		"a/b",
		"a\x00b",
		"a\x00b.gguf",
		"line\nbreak.gguf",
		strings.Repeat("x", 129),
		strings.Repeat("x", 4096) + ".gguf",
		`C:\x`,
		`C:\x.gguf`,
		`\\host\share`,
		`\\host\share\m.gguf`,
		"model.",
		"model ",
		" model",
		"-rf",
		".hidden",
		"a..b",
		"\xff\xfe.gguf",
		"/etc/passwd",
		"./notes.txt",
		"~/x",
		"/m/.gguf",
		"/m/....gguf",
		"/m/---.gguf",
		"hf:",
		"hf:owner",
		"hf:../x",
		"hf:owner/..",
		"hf:owner/repo/extra",
		"hf:-owner/repo",
		"hf:owner/repo:",
		"hf:owner/repo:../../x.gguf",
		"hf:owner/repo:/abs.gguf",
		"hf:owner/repo:a/../b.gguf",
		"hf:owner/repo:a//b.gguf",
		`hf:owner/repo:a\b.gguf`,
		"hf:owner/repo:notes.txt",
		"hf:owner/repo:x.gguf:y.gguf",
		"hf:" + strings.Repeat("o", 97) + "/repo",
	} {
		r, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%.80q) = %+v, want an error", in, r)
		}
	}
}

// A reference that is not a path or hf: is a catalog id, checked by
// wire.CheckModelID (whose own tests cover the alphabet).
func TestIDRefs(t *testing.T) {
	for _, id := range []string{"..%2f..", "a\x00", "C:x", "x/y", "x.", "..a"} {
		if r, err := Parse(id); err == nil {
			t.Errorf("%q accepted as %+v", id, r)
		}
	}
	for _, id := range []string{"a", "a.b", "a-b_c.Q8_0"} {
		if r, err := Parse(id); err != nil || r.Kind != KindID || r.ID != id {
			t.Errorf("%q: %+v %v", id, r, err)
		}
	}
}

func TestAbsolute(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"~/m/x.gguf":    filepath.Join(home, "m/x.gguf"),
		"./x.gguf":      filepath.Join(wd, "x.gguf"),
		"x.gguf":        filepath.Join(wd, "x.gguf"),
		"/abs/x.gguf":   "/abs/x.gguf",
		"catalog-id":    "catalog-id",
		"hf:o/r:x.gguf": "hf:o/r:x.gguf",
	} {
		got, err := Absolute(in)
		if err != nil || got != want {
			t.Errorf("Absolute(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Absolute("a\x00"); err == nil {
		t.Error("Absolute accepted a NUL byte")
	}
}

func TestStringRoundTrip(t *testing.T) {
	for _, in := range []string{"id", "/a/b.gguf", "hf:o/r", "hf:o/r:f.gguf"} {
		r, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != in {
			t.Errorf("String() = %q, want %q", r.String(), in)
		}
	}
}

// checkSafeID asserts what the catalog relies on: the id is one path
// element that stays inside the directory it is joined to.
func checkSafeID(t *testing.T, in, id string) {
	t.Helper()
	if wire.CheckModelID(id) != nil || !filepath.IsLocal(id) || strings.ContainsAny(id, `/\`) ||
		filepath.Base(id) != id || len(id) > wire.MaxModelID || strings.Contains(id, "..") {
		t.Fatalf("Parse(%q) gave the unsafe id %q", in, id)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"tinyllama", "/m/x.gguf", "./x.gguf", "~/x.gguf", "hf:o/r", "hf:o/r:a/b.gguf",
		"../../etc/passwd", "..%2f..", "a\x00b", `C:\x`, `\\h\s`, "x.", "hf:o/r:../../x.gguf",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		checkSafeID(t, s, r.ID)
		if r.Kind == KindPath && !strings.HasSuffix(strings.ToLower(r.Path), ".gguf") {
			t.Fatalf("Parse(%q): path %q does not end in .gguf", s, r.Path)
		}
		if r.Kind == KindHF {
			back, err := Parse(r.String())
			if err != nil || back != r {
				t.Fatalf("Parse(%q).String() = %q does not parse back: %+v, %v", s, r.String(), back, err)
			}
		}
	})
}
