package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rbee/rbee/internal/queen/fleet"
	"github.com/rbee/rbee/internal/sshx"
	"github.com/rbee/rbee/internal/wire"
)

// startScript starts the installed hive as a daemon that outlives the SSH
// session: its own session (setsid, else nohup), no descriptor of ours, its
// output appended to a log on the host. The token goes from its file into
// the environment, never onto a command line. $1 binary dir, $2 hive id,
// $3 port, $4 queen URL, $5 worker address. It prints "PID LOG".
const startScript = `dir=$1
for f in rbee-hive llm-worker-rbee; do
	if [ ! -x "$dir/$f" ]; then echo "$dir/$f is not installed" >&2; exit 3; fi
done
if [ ! -r "$dir/rbee-hive.token" ]; then echo "$dir/rbee-hive.token is missing" >&2; exit 3; fi
umask 077
logs=${XDG_DATA_HOME:-$HOME/.local/share}/rbee/logs
mkdir -p "$logs" || exit 1
log=$logs/rbee-hive.log
RBEE_HIVE_TOKEN=$(cat "$dir/rbee-hive.token") || exit 1
export RBEE_HIVE_TOKEN
cd / || exit 1
set -- "$dir/rbee-hive" --host 0.0.0.0 --port "$3" --hive-id "$2" --queen-url "$4" --worker-host "$5"
echo "--- $(date) starting $*" >>"$log"
if command -v setsid >/dev/null 2>&1; then
	setsid "$@" </dev/null >>"$log" 2>&1 &
else
	nohup "$@" </dev/null >>"$log" 2>&1 &
fi
pid=$!
echo "$pid" >"$dir/rbee-hive.pid"
echo "$pid $log"`

// start starts the hive on the host, or finds it running, and returns once
// it answers the queen at its URL.
func (r *remote) start() error {
	st := r.l.fleet.Probe(r.ctx(), r.h)
	if st.State == wire.HiveOnline {
		if st.HiveID != r.h.Alias {
			return wire.Errorf(wire.CodeHiveUnreachable, "%s answers as hive %q, not %s; is HivePort %d right?", st.URL, st.HiveID, r.h.Alias, r.h.HivePort)
		}
		r.j.Narrate("start", fmt.Sprintf("Hive %s at %s is already running", r.h.Alias, st.URL))
		r.j.Emit(wire.NewResult(st))
		return nil
	}
	if tok, err := r.l.fleet.Tokens.Get(r.h.Alias); err != nil {
		return err
	} else if tok == "" {
		return wire.Errorf(wire.CodeNotInstalled, "hive %s has no token on this machine: install it first with: rbee hive install -a %s", r.h.Alias, r.h.Alias)
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	queenURL, err := r.l.queenURLFor(c, r.h)
	if err != nil {
		return err
	}
	workerHost, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return err
	}
	out, err := c.Run(r.ctx(), nil, startScript, r.dir, r.h.Alias, strconv.Itoa(r.h.HivePort), queenURL, workerHost)
	var ee *sshx.ExitError
	switch {
	case errors.As(err, &ee) && ee.Status == 3:
		return wire.Errorf(wire.CodeNotInstalled, "hive %s: %s; install it with: rbee hive install -a %s", r.h.Alias, ee.Stderr, r.h.Alias)
	case err != nil:
		return r.fail(err)
	}
	pidStr, logPath, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || logPath == "" {
		return wire.Errorf(wire.CodeSSHFailed, "starting hive %s: unexpected answer %.100q", r.h.Alias, out)
	}
	r.j.Narrate("start", fmt.Sprintf("Started rbee-hive on %s (pid %d, log %s there); its workers listen on %s and report to %s; waiting for it at %s",
		r.h.Alias, pid, logPath, workerHost, queenURL, fleet.URL(r.h)))
	st, err = r.awaitUp(pid, logPath)
	if err != nil {
		r.abandon()
		return err
	}
	caps, err := r.l.fleet.Capabilities(r.ctx(), r.h)
	if err != nil {
		return wire.Errorf(wire.CodeHiveUnreachable, "hive %s is up but refuses this queen (%v): is its token the one install gave it? install it again and restart it", r.h.Alias, err)
	}
	st.Capabilities = caps
	r.j.Narrate("start", fmt.Sprintf("Hive %s is up at %s", r.h.Alias, st.URL))
	r.j.Emit(wire.NewResult(st))
	return nil
}

// awaitUp polls the hive's /health until it answers as this hive; it gives
// up with the hive's last words when the process is gone or the start
// timeout passes.
func (r *remote) awaitUp(pid int, logPath string) (wire.HiveStatus, error) {
	deadline := time.Now().Add(r.l.opt.HiveStartTimeout)
	lastCheck := time.Now()
	for {
		st := r.l.fleet.Probe(r.ctx(), r.h)
		if st.State == wire.HiveOnline && st.HiveID == r.h.Alias {
			return st, nil
		}
		if r.ctx().Err() != nil {
			return st, context.Cause(r.ctx())
		}
		if time.Now().After(deadline) {
			return st, wire.Errorf(wire.CodeHiveUnreachable, "hive %s did not answer at %s within %s (%s); its log on the host says: %s",
				r.h.Alias, st.URL, r.l.opt.HiveStartTimeout, st.Error, r.lastWords(logPath))
		}
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			_, err := r.c.Run(r.ctx(), nil, `kill -0 "$1" 2>/dev/null`, strconv.Itoa(pid))
			var ee *sshx.ExitError
			switch {
			case r.ctx().Err() != nil:
				return st, context.Cause(r.ctx())
			case errors.As(err, &ee):
				return st, wire.Errorf(wire.CodeHiveUnreachable, "rbee-hive exited on %s before it answered: %s", r.h.Alias, r.lastWords(logPath))
			case err != nil:
				return st, r.fail(err)
			}
		}
		select {
		case <-r.ctx().Done():
		case <-time.After(pollInterval):
		}
	}
}

// abandon stops a hive whose start failed (it may run, unreachable from
// here), so that no hive is left that the queen cannot use; it runs even
// when the job was cancelled.
func (r *remote) abandon() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx()), remoteStopWait)
	defer cancel()
	if r.c == nil {
		return
	}
	if out, err := r.c.Run(ctx, nil, stopScript, r.dir); err == nil && out != nil && string(out) != "none\n" {
		r.j.Narrate("start", fmt.Sprintf("Stopped the rbee-hive that did not answer on %s", r.h.Alias))
	}
}

// lastWords is the last line of the hive's log on the host.
func (r *remote) lastWords(logPath string) string {
	out, err := r.run(`tail -n 1 -- "$1"`, logPath)
	if err != nil || out == "" {
		return "(nothing; see " + logPath + " on the host)"
	}
	return out
}
