package download

import "testing"

// A digest ParseSHA256 accepts is 64 lowercase hex digits, whatever the
// header held: it can never carry a path or a separator onward.
func FuzzParseSHA256(f *testing.F) {
	for _, s := range []string{`"` + "ab" + `"`, `W/"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"`, "../etc", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSHA256(s)
		if err == nil && !sha256RE.MatchString(got) {
			t.Fatalf("ParseSHA256(%q) = %q", s, got)
		}
		start, end, total, ok := parseContentRange(s)
		if ok && (start > end || total < 0 || (start >= 0 && total > 0 && end >= total)) {
			t.Fatalf("parseContentRange(%q) = %d %d %d", s, start, end, total)
		}
	})
}
