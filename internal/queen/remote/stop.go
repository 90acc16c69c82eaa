package remote

import (
	"fmt"
	"path"

	"github.com/rbee/rbee/internal/queen/fleet"
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
	r.j.Emit(wire.NewResult(r.l.fleet.Probe(r.ctx(), r.h)))
	return nil
}

func (r *remote) stopHive() error {
	st := r.l.fleet.Probe(r.ctx(), r.h)
	if st.State == wire.HiveOnline && st.HiveID == r.h.Alias {
		r.j.Narrate("stop", fmt.Sprintf("Asking hive %s at %s to stop its workers and shut down", r.h.Alias, st.URL))
		return r.shutdown()
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

// shutdown asks the hive, with its own token, to stop and waits until it
// no longer answers, which it does once its workers are stopped.
func (r *remote) shutdown() error {
	if err := r.l.fleet.Shutdown(r.ctx(), r.h, remoteStopWait); err != nil {
		return err
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
	for _, name := range []string{fleet.HiveProgram, workerProgram, tokenFile, pidFile} {
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
	if err := r.l.fleet.Tokens.Remove(r.h.Alias); err != nil {
		return fmt.Errorf("removing the token of hive %s: %w", r.h.Alias, err)
	}
	r.j.Narrate("uninstall", fmt.Sprintf("Uninstalled hive %s; its models and logs stay under ~/.local/share/rbee on the host", r.h.Alias))
	r.j.Emit(wire.NewResult(res))
	return nil
}
