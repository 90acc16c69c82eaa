package hf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rbee/rbee/internal/hf/hubtest"
)

func testClient(t *testing.T, hub *hubtest.Hub, token string) *Client {
	t.Helper()
	c, err := New(hub.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = time.Millisecond
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestStat(t *testing.T) {
	hub := hubtest.New()
	defer hub.Close()
	data := []byte("GGUF pretend model")
	sum := sha256.Sum256(data)
	hub.Add("owner/repo", "sub/m.gguf", data)
	for _, lfs := range []bool{false, true} {
		hub.LFSRedirect = lfs
		info, err := testClient(t, hub, "").Stat(ctx(t), "owner", "repo", "", "sub/m.gguf")
		if err != nil {
			t.Fatal(err)
		}
		want := FileInfo{URL: hub.URL + "/owner/repo/resolve/main/sub/m.gguf", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Commit: hubtest.Commit}
		if info != want {
			t.Fatalf("lfs=%v: %+v, want %+v", lfs, info, want)
		}
	}

	c := testClient(t, hub, "")
	if _, err := c.Stat(ctx(t), "owner", "repo", "", "nope.gguf"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := c.Stat(ctx(t), "owner", "nope", "", "m.gguf"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing repository: %v", err)
	}
	// A digest that is not a SHA-256 is refused when read.
	for _, f := range []hubtest.Fault{{NoDigest: true}, {Digest: `"../../etc/passwd"`}, {Digest: `"` + strings.Repeat("g", 64) + `"`}} {
		hub.SetFault("owner/repo", "sub/m.gguf", f)
		if _, err := c.Stat(ctx(t), "owner", "repo", "", "sub/m.gguf"); !errors.Is(err, ErrNoDigest) {
			t.Errorf("fault %+v: %v", f, err)
		}
	}
}

// The token opens a gated repository; without it the error says to set
// HF_TOKEN.
func TestToken(t *testing.T) {
	hub := hubtest.New()
	defer hub.Close()
	hub.Add("owner/gated", "m.gguf", []byte("x"))
	hub.Token = "hf_abc"
	_, err := testClient(t, hub, "").Stat(ctx(t), "owner", "gated", "", "m.gguf")
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "HF_TOKEN") {
		t.Fatalf("without a token: %v", err)
	}
	if _, err := testClient(t, hub, "hf_abc").Stat(ctx(t), "owner", "gated", "", "m.gguf"); err != nil {
		t.Fatal(err)
	}
	if _, err := testClient(t, hub, "hf_abc").ListFiles(ctx(t), "owner", "gated"); err != nil {
		t.Fatal(err)
	}
}

func TestListFiles(t *testing.T) {
	hub := hubtest.New()
	defer hub.Close()
	hub.Add("owner/repo", "b.gguf", []byte("b"))
	hub.Add("owner/repo", "a/README.md", []byte("a"))
	c := testClient(t, hub, "")
	names, err := c.ListFiles(ctx(t), "owner", "repo")
	if err != nil || strings.Join(names, ",") != "a/README.md,b.gguf" {
		t.Fatalf("%v, %v", names, err)
	}
	if _, err := c.ListFiles(ctx(t), "owner", "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing repository: %v", err)
	}
	for _, hostile := range []string{
		"../../.ssh/authorized_keys", "/etc/passwd", "sub/../../x.gguf", `a\b.gguf`, `..\..\x.gguf`,
		"C:/x.gguf", "a\x00b.gguf", "a\nb.gguf", "", "a//b.gguf", "./x.gguf", "x/..", strings.Repeat("a", 2000),
	} {
		hub.SetListing("owner/repo", []string{"fine.gguf", hostile})
		if _, err := c.ListFiles(ctx(t), "owner", "repo"); !errors.Is(err, ErrHostile) {
			t.Errorf("listing with %.40q: %v", hostile, err)
		}
	}
}

func TestNew(t *testing.T) {
	c, err := New("", "")
	if err != nil || c.Endpoint() != DefaultEndpoint {
		t.Fatalf("default: %v %v", c, err)
	}
	c, err = New("https://mirror.example/hf/", "")
	if err != nil || c.FileURL("o", "r", "", "d/m.gguf") != "https://mirror.example/hf/o/r/resolve/main/d/m.gguf" {
		t.Fatalf("mirror with a path: %v", err)
	}
	for _, bad := range []string{"ftp://x", "http://", "huggingface.co", "http://u:p@h", "http://h/?q=1", "http://h/#f", "://x"} {
		if _, err := New(bad, ""); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	if _, err := New("", "tok\nen"); err == nil {
		t.Error("a token with a newline was accepted")
	}
	// The token goes to the endpoint only.
	c, _ = New("https://huggingface.co", "hf_x")
	if p := c.Policy(); p.Token != "hf_x" || p.Home.Host != "huggingface.co" {
		t.Fatalf("policy %+v", p)
	}
}

func TestChooseGGUF(t *testing.T) {
	for _, tc := range []struct {
		files []string
		want  string // "" for an error
		errs  string // in the error
	}{
		{[]string{"README.md", "stories260K.gguf"}, "stories260K.gguf", ""},
		{[]string{"m.Q8_0.gguf", "m.Q4_K_M.gguf", "m.f16.gguf"}, "m.Q4_K_M.gguf", ""},
		{[]string{"m-q8_0.gguf", "m-q4_k_s.gguf", "m-f16.gguf"}, "m-q8_0.gguf", ""},
		{[]string{"TinyStories-656K-Q8_0.gguf", "stories260K.gguf"}, "TinyStories-656K-Q8_0.gguf", ""},
		{[]string{"m.IQ4_0.gguf", "m.F32.gguf"}, "m.F32.gguf", ""},
		{[]string{"m.Q4_K_M.gguf", "mmproj-m-f16.gguf"}, "m.Q4_K_M.gguf", ""},
		{[]string{"a/m.Q4_K_M.gguf", "b/m.Q4_K_M.gguf"}, "", "a/m.Q4_K_M.gguf, b/m.Q4_K_M.gguf"},
		{[]string{"x.gguf", "y.gguf"}, "", "x.gguf, y.gguf"},
		{[]string{"README.md"}, "", "no .gguf"},
		{nil, "", "no .gguf"},
		{[]string{"m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf"}, "", "split"},
		{[]string{"m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf", "small.Q8_0.gguf"}, "small.Q8_0.gguf", ""},
	} {
		got, err := ChooseGGUF(tc.files)
		if got != tc.want || (tc.errs != "") != (err != nil) || err != nil && !strings.Contains(err.Error(), tc.errs) {
			t.Errorf("ChooseGGUF(%q) = %q, %v", tc.files, got, err)
		}
	}
}
