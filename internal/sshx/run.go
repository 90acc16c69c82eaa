package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Bounds of what a remote command may print back.
const (
	maxStdout = 1 << 20
	maxStderr = 8 << 10
)

// Quote makes s one word of a POSIX shell, whatever it contains: inside
// single quotes nothing is special, and a single quote itself is closed,
// escaped and reopened.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command is the command line that runs script with sh, its arguments
// passed as $1, $2, ...: the values never become part of the script, and
// the login shell (whatever it is) sees only single-quoted words.
func Command(script string, args ...string) string {
	var b strings.Builder
	b.WriteString("sh -c ")
	b.WriteString(Quote(script))
	b.WriteString(" rbee")
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(Quote(a))
	}
	return b.String()
}

// ExitError is a remote command that exited non-zero.
type ExitError struct {
	Status int
	Stderr string // its last words
}

func (e *ExitError) Error() string {
	if e.Stderr == "" {
		return fmt.Sprintf("the remote command exited with status %d", e.Status)
	}
	return fmt.Sprintf("the remote command exited with status %d: %s", e.Status, e.Stderr)
}

// Run runs script with sh on the host, args as its $1..$n and stdin as its
// input (nil: none), and returns what it printed on stdout (at most 1 MiB).
// A non-zero exit is an *ExitError with the end of its stderr. When ctx
// ends first the session is closed and ctx's cause returned.
func (c *Client) Run(ctx context.Context, stdin io.Reader, script string, args ...string) ([]byte, error) {
	sess, err := c.conn.NewSession()
	if err != nil {
		return nil, fmt.Errorf("SSH session to %s: %w", c.target.Alias, err)
	}
	defer sess.Close()
	var out limitedBuffer
	out.max = maxStdout
	var errb tailBuffer
	errb.max = maxStderr
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, &out, &errb

	done := make(chan error, 1)
	go func() { done <- sess.Run(Command(script, args...)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return nil, context.Cause(ctx)
	}
	var ee *ssh.ExitError
	switch {
	case errors.As(err, &ee):
		return out.Bytes(), &ExitError{Status: ee.ExitStatus(), Stderr: strings.TrimSpace(errb.String())}
	case err != nil:
		return out.Bytes(), fmt.Errorf("running a command on %s: %w", c.target.Alias, err)
	case out.over:
		return out.Bytes(), fmt.Errorf("the command on %s printed more than %d bytes", c.target.Alias, maxStdout)
	}
	return out.Bytes(), nil
}

// limitedBuffer keeps the first max bytes and notes that there were more.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last max bytes: where a failing command says why.
type tailBuffer struct {
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }
