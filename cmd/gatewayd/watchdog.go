package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/watchdog"
)

// The watchdog (`gatewayd watchdog`, hidden) is the same binary as the
// daemon but only waits on a pipe and, at most once, runs iptables-restore
// and a few netlink calls. Its runtime is sized for that.
const (
	// watchdogMaxProcs: it does one thing at a time.
	watchdogMaxProcs = 1
	// watchdogMemLimit is its soft heap limit; the config and a cleanup
	// need well under 1 MiB, so the GC keeps it small without ever
	// running hot.
	watchdogMemLimit = 8 << 20
	// watchdogGCPercent collects earlier than the default 100.
	watchdogGCPercent = 25
)

// Waits for the state-dir lock (see package watchdog).
const (
	// runLockWait: a daemon starting right after a crash waits this long
	// for the old watchdog's cleanup (its iptables calls may each wait 5 s
	// for the xtables lock), then gives up: another gatewayd is running.
	runLockWait = 15 * time.Second
	// cleanupLockWait: `gatewayd cleanup` waits this long for a watchdog's
	// cleanup, then cleans up regardless (a running daemon's lock is
	// refused at once instead).
	cleanupLockWait = 5 * time.Second
)

func lockPath(cfg *config.Config) string {
	return filepath.Join(cfg.StateDir, watchdog.LockName)
}

// installedName is the file in state_dir that holds the config whose
// interception the daemon installs: written before the first install and
// after each applied reload, read by the watchdog (its -c), so that what
// it removes is what is installed, whatever the config file says by then.
// Removed on a clean exit.
const installedName = "installed.toml"

func installedPath(cfg *config.Config) string {
	return filepath.Join(cfg.StateDir, installedName)
}

// writeInstalled records cfg as installed (atomically: a watchdog reading
// it sees the old or the new config) and returns the file's path.
func writeInstalled(cfg *config.Config) (string, error) {
	path := installedPath(cfg)
	if cfg.Text() == "" {
		return "", fmt.Errorf("recording the installed config: %s was not read from a file", cfg.Path())
	}
	f, err := os.CreateTemp(cfg.StateDir, installedName+".*")
	if err != nil {
		return "", fmt.Errorf("recording the installed config: %w", err)
	}
	_, werr := f.WriteString(cfg.Text())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("recording the installed config in %s: %w", path, werr)
	}
	return path, nil
}

// failsafe is the daemon's side: the state lock it holds while it runs
// and its watchdog.
type failsafe struct {
	lock *watchdog.Lock // nil if the state dir could not hold one
	wd   *watchdog.Handle
	// installed is the state_dir file the watchdog reads (writeInstalled);
	// "" if it reads the config file instead.
	installed string
	// started: the gateway ran, so interception may be installed;
	// cleaned: it returned without gateway.ErrInterceptionLeft, so it
	// removed whatever it installed (or never installed anything, as when
	// it refuses to start). A panic never sets it.
	started, cleaned bool
}

// startFailsafe takes the state lock and starts the watchdog. Call it
// before installing anything. ctx ends the wait for the lock early.
func startFailsafe(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer) (*failsafe, error) {
	ctx, cancel := context.WithTimeout(ctx, runLockWait)
	defer cancel()
	lock, err := watchdog.Acquire(ctx, lockPath(cfg), nil)
	var held *watchdog.HeldError
	switch {
	case errors.As(err, &held):
		return nil, fmt.Errorf("locking state_dir %s: %w (is another gatewayd with this state_dir running?)", cfg.StateDir, err)
	case err != nil:
		log.Warn("running without the state lock: a restart right after a crash may race the watchdog's cleanup", "err", err)
	}
	installed, err := writeInstalled(cfg)
	path := installed
	if err != nil {
		log.Warn("the watchdog reads the config file: an edit made to it while gatewayd runs changes what a failsafe cleanup removes", "err", err)
		if path, err = filepath.Abs(cfg.Path()); err != nil {
			_ = lock.Release()
			return nil, fmt.Errorf("locating the config for the watchdog: %w", err)
		}
	}
	wd, err := watchdog.Start(watchdog.Options{
		Args:   []string{os.Args[0], "watchdog", "-c", path},
		Stderr: stderr, // main passes os.Stderr: the watchdog writes to it directly
		Log:    log,
	})
	if err != nil {
		_ = lock.Release()
		return nil, err
	}
	log.Info("failsafe watchdog started", "pid", wd.Pid(), "mode", cfg.Failsafe.Mode.String())
	return &failsafe{lock: lock, wd: wd, installed: installed}, nil
}

// reloaded records cfg as installed and has the watchdog read it.
func (f *failsafe) reloaded(cfg *config.Config) error {
	if f.installed == "" {
		return f.wd.Reload() // it re-reads the config file
	}
	if _, err := writeInstalled(cfg); err != nil {
		return err
	}
	return f.wd.Reload()
}

// run runs the gateway and records how it ended: from its start the
// interception may be installed, and a return without
// gateway.ErrInterceptionLeft means gatewayd removed it itself.
func (f *failsafe) run(ctx context.Context, run func(context.Context) error) error {
	f.started = true
	err := run(ctx)
	f.cleaned = !errors.Is(err, gateway.ErrInterceptionLeft)
	return err
}

// close ends the watchdog. If nothing was installed or the run removed it,
// the watchdog is told to exit quietly. Otherwise (a failed removal, or a
// panic unwinding cmdRun) it gets the lock and the failsafe policy runs
// as after a crash, before gatewayd exits.
func (f *failsafe) close() {
	if !f.started || f.cleaned {
		f.wd.Exit(true)
		if f.installed != "" {
			_ = os.Remove(f.installed) // nothing is installed any more
		}
		_ = f.lock.Release()
		return
	}
	_ = f.lock.Release()
	f.wd.Exit(false)
}

// lockForCleanup takes the state lock for `gatewayd cleanup`, waiting
// for a watchdog's cleanup in progress rather than racing it. Any other
// holder is a running gatewayd whose rules are live: that is refused,
// naming its pid, unless force (the holder is known not to be one), which
// cleans up without the lock. locked says whether the lock is held; the
// returned function releases it.
func lockForCleanup(cfg *config.Config, force bool, log *slog.Logger) (release func(), locked bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupLockWait)
	defer cancel()
	l, err := watchdog.Acquire(ctx, lockPath(cfg), func(holder int) bool {
		return holder == 0 || isWatchdog(holder) // 0: the pid is being written
	})
	var held *watchdog.HeldError
	switch {
	case err == nil:
		return func() { _ = l.Release() }, true, nil
	case errors.As(err, &held) && isWatchdog(held.Pid):
		log.Warn("cleaning up while the watchdog's own cleanup still runs", "watchdog_pid", held.Pid, "waited", cleanupLockWait)
	case errors.As(err, &held) && !force:
		return nil, false, fmt.Errorf("pid %d holds the state lock %s: a gatewayd runs with state_dir %s and its rules are live "+
			"(stopping it removes them); refusing to remove them under it. Use --force only if pid %d is no gatewayd",
			held.Pid, held.Path, cfg.StateDir, held.Pid)
	case errors.As(err, &held):
		log.Warn("cleaning up although a process holds the state lock (--force)", "pid", held.Pid, "lock", held.Path)
	default:
		log.Warn("cleaning up without the state lock", "err", err)
	}
	return func() {}, false, nil
}

// isWatchdog tells whether pid runs `gatewayd watchdog`, as the failsafe
// starts it (argv[1]).
func isWatchdog(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	argv := strings.Split(string(b), "\x00")
	return len(argv) > 1 && argv[1] == "watchdog"
}

// cmdWatchdog is the hidden `gatewayd watchdog -c FILE` that `run` starts
// (see package watchdog), FILE being the installed config in state_dir
// (writeInstalled). It is not meant to be run by hand and refuses to
// without its pipe.
func cmdWatchdog(cfg *config.Config, _, stderr io.Writer) error {
	runtime.GOMAXPROCS(watchdogMaxProcs)
	debug.SetGCPercent(watchdogGCPercent)
	debug.SetMemoryLimit(watchdogMemLimit)
	control, ready, err := watchdog.ChildPipes()
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	defer watchdog.ShieldSignals(log)()
	t := &watchdogTarget{cfg: cfg, log: log, daemon: os.Getppid()}
	pol, err := t.policy(cfg)
	if err != nil {
		return err
	}
	defer t.close()
	w := &watchdog.Watcher{Log: log, Policy: pol, Reload: t.reload, Claim: t.claim}
	if err := watchdog.SignalReady(ready); err != nil {
		return err
	}
	log.Debug("watchdog: guarding gatewayd", "gatewayd_pid", t.daemon, "failsafe", cfg.Failsafe.Mode.String())
	debug.FreeOSMemory() // return start-up garbage before the long wait
	return w.Run(control)
}

// watchdogTarget is what the watchdog cleans up: the current config's
// gateway, opened in advance so that a cleanup starts at once.
type watchdogTarget struct {
	cfg      *config.Config
	log      *slog.Logger
	daemon   int    // the gatewayd pid being guarded
	closeSys func() // of the prepared gateway; nil if none
}

// policy prepares the failsafe policy of cfg and makes cfg current.
func (t *watchdogTarget) policy(cfg *config.Config) (watchdog.Policy, error) {
	if cfg.Failsafe.Mode == config.FailClosed {
		t.close()
		t.cfg = cfg
		return watchdog.Policy{FailOpen: false}, nil
	}
	k, err := newKernel(cfg, t.log)
	if err != nil {
		return watchdog.Policy{}, fmt.Errorf("watchdog: preparing the cleanup: %w", err)
	}
	t.close()
	t.cfg, t.closeSys = cfg, k.close
	return watchdog.Policy{FailOpen: true, Cleanup: k.g.Cleanup}, nil
}

// reload re-reads its config file (the installed config the daemon has
// just rewritten) after the daemon applied a reload.
func (t *watchdogTarget) reload() (watchdog.Policy, error) {
	cfg, err := config.Load(t.cfg.Path())
	if err != nil {
		return watchdog.Policy{}, err
	}
	return t.policy(cfg)
}

// claim takes the state lock for the cleanup, waiting while the guarded
// daemon's files are still being closed. A lock held by anyone else means
// a newer gatewayd (or `gatewayd cleanup`) owns the rules now.
func (t *watchdogTarget) claim() (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), runLockWait)
	defer cancel()
	l, err := watchdog.Acquire(ctx, lockPath(t.cfg), func(holder int) bool {
		return holder == t.daemon || holder == 0
	})
	var held *watchdog.HeldError
	if errors.As(err, &held) && ctx.Err() == nil {
		return nil, fmt.Errorf("pid %d holds %s: %w", held.Pid, held.Path, watchdog.ErrTakenOver)
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Release() }, nil
}

func (t *watchdogTarget) close() {
	if t.closeSys != nil {
		t.closeSys()
		t.closeSys = nil
	}
}
