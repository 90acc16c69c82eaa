package hf

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// maxGitFile bounds a file the hub keeps in git rather than LFS: the hub
// stores everything over 10 MB in LFS.
const maxGitFile = 10 << 20

var gitSHA1 = regexp.MustCompile(`^[0-9a-f]{40}$`)

// gitBlobETag returns the git blob SHA-1 that the hub sends as the ETag of
// a file kept in git (small files without LFS), or "" when the answer is
// not of that kind.
func gitBlobETag(resp *http.Response) string {
	if resp.Header.Get("X-Linked-Etag") != "" {
		return ""
	}
	tag := strings.TrimPrefix(resp.Header.Get("ETag"), "W/")
	tag = strings.Trim(tag, `"`)
	if !gitSHA1.MatchString(tag) {
		return ""
	}
	return tag
}

// statGitFile verifies a small git-stored file against its git blob SHA-1
// (the hub gives no SHA-256 for it) and returns its SHA-256, which the
// download then checks like any other. The file is fetched twice; it is at
// most maxGitFile bytes.
func (c *Client) statGitFile(ctx context.Context, target, what, blobSHA1 string) (FileInfo, error) {
	resp, err := c.do(ctx, http.MethodGet, target)
	if err != nil {
		return FileInfo{}, fmt.Errorf("fetching %s to verify it: %w", what, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp, what); err != nil {
		return FileInfo{}, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxGitFile+1))
	if err != nil {
		return FileInfo{}, fmt.Errorf("fetching %s to verify it: %w", what, err)
	}
	if len(data) > maxGitFile {
		return FileInfo{}, fmt.Errorf("%w: %s is kept in git but is over %d bytes", ErrNoDigest, what, maxGitFile)
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != blobSHA1 {
		return FileInfo{}, fmt.Errorf("%w: %s does not match its git blob id %s (got %s)", ErrNoDigest, what, blobSHA1, got)
	}
	sum := sha256.Sum256(data)
	return FileInfo{URL: target, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Commit: commitOf(resp)}, nil
}

func commitOf(resp *http.Response) string {
	if c := resp.Header.Get("X-Repo-Commit"); commitOK(c) {
		return c
	}
	return ""
}
