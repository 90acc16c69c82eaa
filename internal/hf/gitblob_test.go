package hf

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/rbee/rbee/internal/hf/hubtest"
)

// A small file the hub keeps in git (no LFS) has no SHA-256 on the hub: it
// is verified against its git blob id, and its SHA-256 computed from the
// verified bytes.
func TestStatGitFile(t *testing.T) {
	hub := hubtest.New()
	defer hub.Close()
	data := []byte("GGUF a model small enough for git")
	hub.Add("owner/repo", "tiny/m.gguf", data)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	blob := hex.EncodeToString(h.Sum(nil))
	sum := sha256.Sum256(data)

	c := testClient(t, hub, "")
	hub.SetFault("owner/repo", "tiny/m.gguf", hubtest.Fault{GitBlob: blob})
	info, err := c.Stat(ctx(t), "owner", "repo", "", "tiny/m.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(data)) {
		t.Fatalf("info %+v", info)
	}
	// Bytes that do not match the blob id are refused.
	other := "0123456789abcdef0123456789abcdef01234567"
	hub.SetFault("owner/repo", "tiny/m.gguf", hubtest.Fault{GitBlob: other})
	if _, err := c.Stat(ctx(t), "owner", "repo", "", "tiny/m.gguf"); !errors.Is(err, ErrNoDigest) {
		t.Fatalf("wrong blob id: %v", err)
	}
}
