package queen

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"time"

	"github.com/rbee/rbee/internal/wire"
)

// stopScript stops the hive that start started, when /health does not
// answer: the pid file names it, and a pid that is no rbee-hive (reused
// since) is left alone. $1 binary dir. It prints none, stopped or killed.
const stopScript = `pidf=$1/rbee-hive.pid
[ -r "$pidf" ] || { echo none; exit 0; }
pid=$(cat "$pidf")
case $pid in ''|*[!0-9]*) rm -f "$pidf"; echo none; exit 0;; esac
if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidf"; echo none; exit 0; fi
comm=$(cat "/proc/$pid/comm" 2>/dev/null || ps -p "$pid" -o comm= 2>/dev/null)
case $comm in *rbee-hive*) ;; *) rm -f "$pidf"; echo none; exit 0;; esac
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null; do
	i=$((i+1))
	if [ "$i" -gt 300 ]; then kill -KILL "$pid"; rm -f "$pidf"; echo killed; exit 0; fi
	sleep 0.1
done
rm -f "$pidf"
echo stopped`

// stop stops the hive and, with it, its workers: by its API when it
// answers, else over SSH by the pid start recorded.
func (r *remote) stop() error {
	if err := r.stopHive(); err != nil {
		return err
	}
	r.j.Emit(wire.NewResult(r.s.probe(r.ctx(), r.h)))
	return nil
}

func (r *remote) stopHive() error {
	st := r.s.probe(r.ctx(), r.h)
	if st.State == wire.HiveOnline && st.HiveID == r.h.Alias {
		r.j.Narrate("stop", fmt.Sprintf("Asking hive %s at %s to stop its workers and shut down", r.h.Alias, st.URL))
		return r.shutdown(st.URL)
	}
	if st.State == wire.HiveOnline {
		return wire.Errorf(wire.CodeHiveUnreachable, "%s answers as hive %q, not %s; is HivePort %d right?", st.URL, st.HiveID, r.h.Alias, r.h.HivePort)
	}
	r.j.Narrate("stop", fmt.Sprintf("Hive %s does not answer at %s; looking for its process on the host", r.h.Alias, st.URL))
	out, err := r.run(stopScript, r.dir)
	if err != nil {
		return err
	}
	switch out {
	case "stopped":
		r.j.Narrate("stop", fmt.Sprintf("Stopped rbee-hive on %s", r.h.Alias))
	case "killed":
		r.j.Narrate("stop", fmt.Sprintf("rbee-hive on %s did not stop within 30 s of SIGTERM and was killed", r.h.Alias))
	default:
		r.j.Narrate("stop", fmt.Sprintf("Hive %s is not running", r.h.Alias))
	}
	return nil
}

// shutdown posts /v1/shutdown with the hive's token and waits until the
// hive stops answering, which it does once its workers are stopped.
func (r *remote) shutdown(base string) error {
	ctx := r.ctx()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/shutdown", http.NoBody)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.s.hiveToken(r.h.Alias))
	if err := r.s.do(req, nil); err != nil {
		return wire.Errorf(wire.CodeHiveUnreachable, "hive %s did not take the shutdown request: %v", r.h.Alias, err)
	}
	deadline := time.Now().Add(remoteStopWait)
	for r.s.probe(ctx, r.h).State == wire.HiveOnline {
		if time.Now().After(deadline) {
			return wire.Errorf(wire.CodeInternal, "hive %s still answers %s after it was asked to shut down", r.h.Alias, remoteStopWait)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(pollInterval):
		}
	}
	r.j.Narrate("stop", fmt.Sprintf("Hive %s stopped", r.h.Alias))
	return nil
}

// uninstall stops the hive, then removes what install put on the host and
// the token kept here. The hive's data (models, logs) stays.
func (r *remote) uninstall() error {
	if _, err := r.client(); err != nil {
		return err
	}
	if err := r.stopHive(); err != nil {
		return err
	}
	res := wire.HiveInstall{Alias: r.h.Alias, Host: r.h.HostName, BinaryPath: r.dir, Files: []string{}}
	for _, name := range []string{hiveProgram, workerProgram, tokenFile, pidFile} {
		p := path.Join(r.dir, name)
		removed, err := r.c.Remove(p)
		if err != nil {
			return r.fail(err)
		}
		if removed {
			res.Files = append(res.Files, p)
			r.j.Narrate("uninstall", fmt.Sprintf("Removed %s:%s", r.h.Alias, p))
		}
	}
	libs, err := uninstallGPU(r.c, r.dir)
	if err != nil {
		return r.fail(err)
	}
	for _, p := range libs {
		r.j.Narrate("uninstall", fmt.Sprintf("Removed %s:%s", r.h.Alias, p))
	}
	res.Files = append(res.Files, libs...)
	if err := r.s.tokens.remove(r.h.Alias); err != nil {
		return fmt.Errorf("removing the token of hive %s: %w", r.h.Alias, err)
	}
	r.j.Narrate("uninstall", fmt.Sprintf("Uninstalled hive %s; its models and logs stay under ~/.local/share/rbee on the host", r.h.Alias))
	r.j.Emit(wire.NewResult(res))
	return nil
}
