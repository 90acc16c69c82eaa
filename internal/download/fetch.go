package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Causes of a failed attempt that are retried.
var (
	errStalled    = errors.New("no data arrived")
	errStaleRange = errors.New("the server's byte range does not continue the partial file")
	errShort      = errors.New("the server ended the body early")
)

// Reads go into bufCount buffers of bufSize, which the hashing goroutine
// gives back as it catches up.
const (
	bufSize  = 1 << 20
	bufCount = 4
)

// attemptError is how one attempt failed: retry says whether another
// attempt may succeed, wait how long the server asked to wait.
type attemptError struct {
	err   error
	retry bool
	now   bool // retry at once: the partial was discarded, nothing is wrong with the server
	wait  time.Duration
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

func retryable(err error) error { return &attemptError{err: err, retry: true} }

// transfer is the state of one fetch across its attempts.
type transfer struct {
	req      Request
	p        *partial
	total    int64 // req.Size, or what the server said
	received int64 // body bytes received, over all attempts
	report   func(Progress)
	meter    meter
}

func (d *Downloader) fetch(ctx context.Context, req Request, report func(Progress)) (Result, error) {
	res := Result{Path: filepath.Join(req.Root.Name(), filepath.FromSlash(req.Name)), SHA256: req.SHA256}
	if size, ok := d.inPlace(req); ok {
		res.Size, res.Cached = size, true
		report(Progress{Done: size, Total: size})
		return res, nil
	}
	if dir := path.Dir(req.Name); dir != "." {
		if err := req.Root.MkdirAll(dir, 0o700); err != nil {
			return res, localError("creating", dir, err)
		}
	}
	open := d.open
	if open == nil {
		open = openRW
	}
	p, err := openPartial(req, open)
	if err != nil {
		return res, err
	}
	defer p.close()
	res.Resumed = p.size > 0
	p.startPipe(bufCount, bufSize)
	t := &transfer{req: req, p: p, total: req.Size, report: report}
	t.meter.start(p.size, d.opt.ProgressEvery)

	failures := 0
	for !(t.total > 0 && p.size == t.total) {
		before := t.received
		err := d.attempt(ctx, t)
		res.Attempts++
		if err == nil {
			break
		}
		var ae *attemptError
		if !errors.As(err, &ae) || !ae.retry {
			// Only what a later try can finish is kept: bytes that
			// arrived before a cancellation. A refusal of the server or
			// the policy, or a full disk, leaves nothing.
			if ctx.Err() == nil || p.size == 0 {
				_ = p.remove()
			}
			res.Transferred = t.received
			return res, err
		}
		if t.received > before {
			failures = 0
		} else {
			failures++
		}
		if failures > d.opt.Retries {
			if p.size == 0 {
				_ = p.remove()
			}
			res.Transferred = t.received
			return res, fmt.Errorf("giving up on %s after %d attempts in a row without data: %w", redactString(req.URL), failures, ae.err)
		}
		wait := d.backoff(failures)
		if ae.now {
			wait = 0
		} else if ae.wait > 0 {
			wait = min(ae.wait, d.opt.MaxBackoff)
		}
		d.opt.Logger.Warn("download attempt failed; retrying", "url", redactString(req.URL), "err", ae.err,
			"have", p.size, "total", t.total, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			if p.size == 0 {
				_ = p.remove()
			}
			res.Transferred = t.received
			return res, err
		}
	}
	res.Transferred, res.Size = t.received, p.size
	if got := p.sum(); got != req.SHA256 {
		_ = p.remove()
		return res, fmt.Errorf("%w: %s has SHA-256 %s, want %s; the file was discarded", ErrMismatch, redactString(req.URL), got, req.SHA256)
	}
	if err := p.commit(req.Name); err != nil {
		if errors.Is(err, ErrDiskFull) {
			_ = p.remove()
		}
		return res, err
	}
	t.meter.done(p.size, t.total, report)
	return res, nil
}

// inPlace reports whether the destination already holds the expected
// bytes (a download that finished, but whose caller did not record it).
func (d *Downloader) inPlace(req Request) (int64, bool) {
	f, err := req.Root.Open(req.Name)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || (req.Size > 0 && st.Size() != req.Size) {
		return 0, false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return 0, false
	}
	return st.Size(), hex.EncodeToString(h.Sum(nil)) == req.SHA256
}

// attempt makes one request for the rest of the file and copies its body
// into the partial file. It returns nil once the body ended with the file
// complete (or, for an unknown size, ended cleanly).
func (d *Downloader) attempt(ctx context.Context, t *transfer) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(d.opt.Stall, func() { cancel(errStalled) })
	defer stall.Stop()

	hreq, err := http.NewRequestWithContext(actx, http.MethodGet, t.req.URL, nil)
	if err != nil {
		return err
	}
	if err := d.opt.Policy.Check(hreq.URL); err != nil {
		return err
	}
	d.opt.Policy.Authorize(hreq)
	offset := t.p.size
	if offset > 0 {
		hreq.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := d.opt.Client.Do(hreq)
	if err != nil {
		return d.requestError(ctx, actx, err)
	}
	defer resp.Body.Close()
	if err := d.checkAnswer(t, resp, offset); err != nil {
		return err
	}
	t.meter.report(t.p.size, t.total, t.report, true)

	for {
		buf := t.p.buffer()
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			stall.Reset(d.opt.Stall)
			t.received += int64(n)
			if t.total > 0 && t.p.size+int64(n) > t.total {
				t.p.release(buf)
				return fmt.Errorf("%w: %s sent more than %d bytes", ErrBadServer, redactString(t.req.URL), t.total)
			}
			if err := t.p.write(buf[:n]); err != nil {
				return err
			}
			t.meter.report(t.p.size, t.total, t.report, false)
		} else {
			t.p.release(buf)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return d.requestError(ctx, actx, rerr)
		}
	}
	if t.total > 0 && t.p.size < t.total {
		return retryable(fmt.Errorf("%w at %d of %d bytes", errShort, t.p.size, t.total))
	}
	return nil
}

// checkAnswer decides what an answer means for the partial file.
func (d *Downloader) checkAnswer(t *transfer, resp *http.Response, offset int64) error {
	url := redactString(t.req.URL)
	switch code := resp.StatusCode; {
	case code == http.StatusPartialContent:
		start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset || end < start || (t.total > 0 && total != t.total) {
			d.opt.Logger.Warn("discarding a partial download: the server's range does not continue it",
				"url", url, "content_range", resp.Header.Get("Content-Range"), "have", offset)
			if err := t.p.discard(); err != nil {
				return err
			}
			return &attemptError{err: errStaleRange, retry: true, now: true}
		}
		if t.total == 0 && total > 0 {
			t.total = total
		}
	case code == http.StatusOK:
		if offset > 0 {
			// The server ignored the range: it sends the whole file.
			d.opt.Logger.Info("the server does not resume; downloading from the start", "url", url, "had", offset)
			if err := t.p.discard(); err != nil {
				return err
			}
		}
		if n := resp.ContentLength; n >= 0 {
			if t.total > 0 && n != t.total {
				return fmt.Errorf("%w: %s sends %d bytes, want %d", ErrBadServer, url, n, t.total)
			}
			t.total = n
		}
	case code == http.StatusRequestedRangeNotSatisfiable:
		// "bytes */N" with N what we have means the partial is complete.
		if _, _, total, ok := parseContentRange(resp.Header.Get("Content-Range")); ok && total == offset && offset > 0 &&
			(t.total == 0 || t.total == total) {
			t.total = total
			return nil
		}
		if offset == 0 {
			return &StatusError{URL: url, Status: code}
		}
		d.opt.Logger.Warn("discarding a partial download the server calls out of range", "url", url, "have", offset)
		if err := t.p.discard(); err != nil {
			return err
		}
		return &attemptError{err: &StatusError{URL: url, Status: code}, retry: true, now: true}
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
		return &attemptError{err: &StatusError{URL: url, Status: code}, retry: true, wait: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return &StatusError{URL: url, Status: code}
	}
	return nil
}

// requestError classifies a failed request or body read: the caller's
// cancellation and the policy's refusals end the download; a stall and
// network errors are retried.
func (d *Downloader) requestError(ctx, actx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case errors.Is(err, ErrRefused):
		return err
	case errors.Is(context.Cause(actx), errStalled):
		return retryable(fmt.Errorf("%w for %s", errStalled, d.opt.Stall))
	}
	return retryable(err)
}

func (d *Downloader) backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	w := d.opt.Backoff << min(failures-1, 20)
	if w <= 0 || w > d.opt.MaxBackoff {
		w = d.opt.MaxBackoff
	}
	// Jitter keeps many hives from retrying against a hub in step.
	return w/2 + rand.N(w/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// parseContentRange parses "bytes START-END/TOTAL" or "bytes */TOTAL"
// (start and end are then -1). A total of "*" is 0.
func parseContentRange(s string) (start, end, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	if tot != "*" {
		n, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, false
		}
		total = n
	}
	if rng == "*" {
		return -1, -1, total, true
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start || (total > 0 && end >= total) {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// retryAfter reads a Retry-After of seconds; dates and junk are 0.
func retryAfter(s string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// meter throttles progress reports and keeps a smoothed rate.
type meter struct {
	every    time.Duration
	last     time.Time
	lastDone int64
	rate     float64
}

func (m *meter) start(done int64, every time.Duration) {
	m.every, m.last, m.lastDone = every, time.Now(), done
}

func (m *meter) report(done, total int64, fn func(Progress), force bool) {
	now := time.Now()
	dt := now.Sub(m.last)
	if !force && dt < m.every {
		return
	}
	if dt >= m.every && done >= m.lastDone {
		inst := float64(done-m.lastDone) / dt.Seconds()
		if m.rate == 0 {
			m.rate = inst
		} else {
			m.rate = 0.6*m.rate + 0.4*inst
		}
	}
	m.last, m.lastDone = now, done
	fn(Progress{Done: done, Total: total, Rate: m.rate})
}

func (m *meter) done(done, total int64, fn func(Progress)) {
	if total == 0 {
		total = done
	}
	fn(Progress{Done: done, Total: total, Rate: m.rate})
}
