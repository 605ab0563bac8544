package watchdog

import (
	"errors"
	"io"
	"log/slog"
	"time"
)

// Messages the daemon writes on the control pipe, one byte each.
const (
	// MsgCleanExit: the daemon removed its interception and is exiting.
	MsgCleanExit byte = 'Q'
	// MsgReload: the daemon reloaded its config; re-read it.
	MsgReload byte = 'R'
)

// Policy is what to do when the daemon dies.
type Policy struct {
	// FailOpen removes the interception with Cleanup, so the LAN falls
	// back to plain forwarding. Otherwise (fail closed) the interception
	// stays and the LAN has no internet rather than leaking past the
	// gateway; the watchdog only logs.
	FailOpen bool
	// Cleanup removes the interception; used only when FailOpen.
	Cleanup func() error
}

// ErrTakenOver is returned (wrapped) by a Claim function when a newer
// gatewayd owns the rules now: the watchdog must leave them alone.
var ErrTakenOver = errors.New("a newer gatewayd took over")

// Watcher is the watchdog process's side of the pipe.
type Watcher struct {
	Log    *slog.Logger
	Policy Policy
	// Reload re-reads the config on MsgReload and returns the new policy;
	// on error the previous policy stays. Nil ignores MsgReload.
	Reload func() (Policy, error)
	// Claim, if set, is called before a fail-open cleanup and returns a
	// release function for after it. An error wrapping ErrTakenOver skips
	// the cleanup; any other error is logged and the cleanup runs anyway
	// (a LAN without internet is the worse outcome).
	Claim func() (release func(), err error)
}

// Run reads control messages until the daemon exits. It returns nil after
// MsgCleanExit or after handling the daemon's death, and the cleanup's
// error if that failed.
func (w *Watcher) Run(control io.Reader) error {
	var b [1]byte
	for {
		n, err := control.Read(b[:])
		if n == 0 {
			if err == nil {
				continue // a zero-byte read without EOF: read again
			}
			if !errors.Is(err, io.EOF) {
				w.Log.Warn("watchdog: reading the control pipe failed; treating gatewayd as gone", "err", err)
			}
			return w.daemonDied()
		}
		switch b[0] {
		case MsgCleanExit:
			w.Log.Debug("watchdog: gatewayd exited cleanly")
			return nil
		case MsgReload:
			w.reload()
		default:
			w.Log.Warn("watchdog: ignoring an unknown control message", "byte", b[0])
		}
	}
}

func (w *Watcher) reload() {
	if w.Reload == nil {
		w.Log.Warn("watchdog: config reload not supported; keeping the config it started with")
		return
	}
	p, err := w.Reload()
	if err != nil {
		w.Log.Error("watchdog: reloading the config failed; keeping the previous one", "err", err)
		return
	}
	w.Policy = p
	w.Log.Info("watchdog: config reloaded", "fail_open", p.FailOpen)
}

// daemonDied applies the policy after the pipe's write end closed without
// MsgCleanExit.
func (w *Watcher) daemonDied() error {
	if !w.Policy.FailOpen {
		w.Log.Warn("watchdog: gatewayd exited unexpectedly; failsafe.mode = \"closed\" leaves its interception in place: intercepted LAN traffic is dropped until gatewayd is restarted or `gatewayd cleanup` runs")
		return nil
	}
	w.Log.Error("watchdog: gatewayd exited unexpectedly, removing interception")
	if w.Claim != nil {
		release, err := w.Claim()
		switch {
		case errors.Is(err, ErrTakenOver):
			w.Log.Info("watchdog: leaving the rules to the gatewayd that took over", "err", err)
			return nil
		case err != nil:
			w.Log.Warn("watchdog: cleaning up without the state lock", "err", err)
		default:
			defer release()
		}
	}
	if w.Policy.Cleanup == nil {
		return errors.New("watchdog: fail-open policy without a cleanup function")
	}
	start := time.Now()
	if err := w.Policy.Cleanup(); err != nil {
		w.Log.Error("watchdog: removing interception failed", "err", err, "took", time.Since(start))
		return err
	}
	w.Log.Info("watchdog: interception removed; the LAN is forwarded plainly", "took", time.Since(start))
	return nil
}
