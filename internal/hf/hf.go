// Package hf speaks the Hugging Face hub's conventions: the endpoint from
// HF_ENDPOINT (default https://huggingface.co) and the token from HF_TOKEN,
// which goes to that endpoint's host only; files at
// {endpoint}/{owner}/{repo}/resolve/{revision}/{file}, with the SHA-256 and
// size of LFS files in the X-Linked-Etag and X-Linked-Size headers; and a
// repository's file list at {endpoint}/api/models/{owner}/{repo}. It also
// picks the GGUF file to use when a reference names none (ChooseGGUF).
package hf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rbee/rbee/internal/download"
)

// Defaults of the hub.
const (
	DefaultEndpoint = "https://huggingface.co"
	DefaultRevision = "main"
)

// Limits on what the hub sends.
const (
	maxListing   = 32 << 20 // bytes of a repository's JSON description
	maxSiblings  = 100_000
	maxFileName  = 1024
	maxFileSize  = 1 << 42 // 4 TiB: a larger X-Linked-Size is junk
	metaAttempts = 4
)

// Errors of the hub, for errors.Is.
var (
	ErrNotFound = errors.New("not found on the hub")
	ErrAuth     = errors.New("the hub wants a token")
	ErrHostile  = errors.New("the hub sent an unsafe file name")
	ErrNoDigest = errors.New("the hub gave no SHA-256 for the file")
)

// Client talks to one hub endpoint.
type Client struct {
	endpoint *url.URL // without a trailing slash
	policy   download.Policy
	http     *http.Client // for metadata: never follows redirects itself
	backoff  time.Duration
}

// New returns a client for endpoint (empty: DefaultEndpoint), sending
// token (may be empty) to that endpoint's host only.
func New(endpoint, token string) (*Client, error) {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return nil, fmt.Errorf("hugging face endpoint %.100q: %v", endpoint, err)
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.Opaque != "":
		return nil, fmt.Errorf("hugging face endpoint %.100q must be http(s)://host[:port][/path]", endpoint)
	case u.User != nil, u.RawQuery != "", u.Fragment != "":
		return nil, fmt.Errorf("hugging face endpoint %.100q must have no user, query or fragment", endpoint)
	}
	if strings.ContainsAny(token, "\r\n\x00") || !utf8.ValidString(token) || len(token) > 4096 {
		return nil, errors.New("HF_TOKEN holds characters no token has")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	c := &Client{endpoint: u, policy: download.Policy{Home: u, Token: token}, backoff: time.Second}
	c.http = c.policy.Client()
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// FromEnv returns a client for HF_ENDPOINT and HF_TOKEN.
func FromEnv() (*Client, error) {
	return New(os.Getenv("HF_ENDPOINT"), os.Getenv("HF_TOKEN"))
}

// Endpoint is the hub's base URL.
func (c *Client) Endpoint() string { return c.endpoint.String() }

// Policy is where downloads from this hub may go, with the token.
func (c *Client) Policy() download.Policy { return c.policy }

// FileURL is the resolve URL of a file. owner, repo and file must have
// been validated (modelref does); each path element is escaped anyway.
func (c *Client) FileURL(owner, repo, revision, file string) string {
	if revision == "" {
		revision = DefaultRevision
	}
	parts := []string{owner, repo, "resolve", revision}
	parts = append(parts, strings.Split(file, "/")...)
	return c.join(parts...)
}

func (c *Client) join(parts ...string) string {
	u := *c.endpoint
	for _, p := range parts {
		u.Path += "/" + p
	}
	return u.String()
}

// FileInfo is what the hub says about one file.
type FileInfo struct {
	URL    string // the resolve URL to download
	SHA256 string // lowercase hex, validated
	Size   int64  // 0 when the hub did not say
	Commit string // the revision's commit, when the hub said
}

// Stat asks the hub for a file's digest and size (a HEAD of its resolve
// URL, not following the redirect to the CDN: the headers of interest are
// on the hub's own answer). A file whose SHA-256 the hub does not give is
// ErrNoDigest: it could not be verified.
func (c *Client) Stat(ctx context.Context, owner, repo, revision, file string) (FileInfo, error) {
	fileURL := c.FileURL(owner, repo, revision, file)
	target := fileURL
	what := fmt.Sprintf("%s/%s: %s", owner, repo, file)
	for hop := 0; ; hop++ {
		resp, err := c.do(ctx, http.MethodHead, target)
		if err != nil {
			return FileInfo{}, fmt.Errorf("asking %s about %s: %w", c.Endpoint(), what, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		// A renamed repository answers with a relative redirect to its new
		// name on the hub itself, without the LFS headers: follow it.
		if isRedirect(resp.StatusCode) && resp.Header.Get("X-Linked-Etag") == "" && strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && hop < 3 {
			next, err := url.Parse(loc)
			if err != nil {
				return FileInfo{}, fmt.Errorf("%s: bad redirect %.100q", what, loc)
			}
			u := *c.endpoint
			u.Path, u.RawPath, u.RawQuery = next.Path, "", next.RawQuery
			target = u.String()
			continue
		}
		if err := statusError(resp, what); err != nil {
			return FileInfo{}, err
		}
		if blob := gitBlobETag(resp); blob != "" {
			return c.statGitFile(ctx, target, what, blob)
		}
		return fileInfo(resp, target, what)
	}
}

func fileInfo(resp *http.Response, target, what string) (FileInfo, error) {
	info := FileInfo{URL: target, Commit: resp.Header.Get("X-Repo-Commit")}
	tag := resp.Header.Get("X-Linked-Etag")
	if tag == "" {
		tag = resp.Header.Get("ETag")
	}
	sum, err := download.ParseSHA256(tag)
	if err != nil {
		return FileInfo{}, fmt.Errorf("%w: %s (ETag %.80q); refusing a download that cannot be verified", ErrNoDigest, what, tag)
	}
	info.SHA256 = sum
	size := resp.Header.Get("X-Linked-Size")
	if size == "" && !isRedirect(resp.StatusCode) {
		size = resp.Header.Get("Content-Length")
	}
	if size != "" {
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil || n <= 0 || n > maxFileSize {
			return FileInfo{}, fmt.Errorf("%s: the hub gives the size %.40q", what, size)
		}
		info.Size = n
	}
	if info.Commit != "" && !commitOK(info.Commit) {
		info.Commit = ""
	}
	return info, nil
}

func commitOK(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isRedirect(code int) bool { return code >= 300 && code < 400 }

// ListFiles returns the file names of a repository's main revision, each
// checked by CheckFileName: a listing with one unsafe name is refused
// whole, since the hub that sent it is not to be trusted with the rest.
func (c *Client) ListFiles(ctx context.Context, owner, repo string) ([]string, error) {
	what := owner + "/" + repo
	resp, err := c.do(ctx, http.MethodGet, c.join("api", "models", owner, repo))
	if err != nil {
		return nil, fmt.Errorf("listing %s on %s: %w", what, c.Endpoint(), err)
	}
	defer resp.Body.Close()
	if err := statusError(resp, what); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxListing+1))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", what, err)
	}
	if len(data) > maxListing {
		return nil, fmt.Errorf("listing %s: the hub's answer is larger than %d bytes", what, maxListing)
	}
	var body struct {
		Siblings []struct {
			RFilename string `json:"rfilename"`
		} `json:"siblings"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return nil, fmt.Errorf("listing %s: the hub's answer is not a model description: %v", what, err)
	}
	if len(body.Siblings) > maxSiblings {
		return nil, fmt.Errorf("listing %s: %d files is more than %d", what, len(body.Siblings), maxSiblings)
	}
	names := make([]string, 0, len(body.Siblings))
	for _, s := range body.Siblings {
		if err := CheckFileName(s.RFilename); err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		names = append(names, s.RFilename)
	}
	return names, nil
}

// CheckFileName refuses a repository file name that could leave the
// directory it is put in: absolute, "..", backslashes, empty elements,
// control characters, or too long.
func CheckFileName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w %.100q: %s", ErrHostile, name, why) }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > maxFileName:
		return bad(fmt.Sprintf("longer than %d bytes", maxFileName))
	case !utf8.ValidString(name):
		return bad("not UTF-8")
	case strings.HasPrefix(name, "/"):
		return bad("absolute")
	case strings.Contains(name, `\`):
		return bad("has a backslash")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return bad("has a control character")
		}
	}
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "":
			return bad("has an empty path element")
		case ".", "..":
			return bad("has a " + part + " path element")
		}
	}
	if len(name) >= 2 && name[1] == ':' {
		return bad("looks like a drive letter")
	}
	return nil
}

// do makes one metadata request with the token where it belongs,
// retrying network errors and 5xx answers a few times.
func (c *Client) do(ctx context.Context, method, target string) (*http.Response, error) {
	var lastErr error
	for attempt := 0; attempt < metaAttempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(c.backoff << (attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, context.Cause(ctx)
			case <-t.C:
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, target, nil)
		if err != nil {
			return nil, err
		}
		if err := c.policy.Check(req.URL); err != nil {
			return nil, err
		}
		c.policy.Authorize(req)
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		resp, err := c.http.Do(req.WithContext(rctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil, context.Cause(ctx)
			}
			if errors.Is(err, download.ErrRefused) {
				return nil, err
			}
			lastErr = err
			continue
		}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			resp.Body.Close()
			cancel()
			lastErr = fmt.Errorf("%s answered %s", c.Endpoint(), resp.Status)
			continue
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, nil
	}
	return nil, lastErr
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// statusError explains the hub's refusals.
func statusError(resp *http.Response, what string) error {
	switch code := resp.StatusCode; {
	case code < 400:
		return nil
	case code == http.StatusUnauthorized:
		return fmt.Errorf("%w: %s does not exist, or is private or gated: check the name, or set HF_TOKEN to a token that may read it", ErrAuth, what)
	case code == http.StatusForbidden:
		return fmt.Errorf("%w: %s is gated: accept its terms on the hub's page, and set HF_TOKEN to a token of that account", ErrAuth, what)
	case code == http.StatusNotFound:
		return fmt.Errorf("%w: %s (check the owner, repository and file names)", ErrNotFound, what)
	}
	return fmt.Errorf("%s: the hub answered %s", what, resp.Status)
}
