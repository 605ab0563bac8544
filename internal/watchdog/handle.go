package watchdog

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Handle is the daemon's side: the running watchdog, restarted if it dies
// while the daemon runs. Its methods are safe for concurrent use.
type Handle struct {
	opts Options
	log  *slog.Logger

	mu  sync.Mutex
	cur *child // the current watchdog; replaced by the supervisor

	stop     chan struct{} // closed by Exit
	done     chan struct{} // closed when the supervisor returned
	exitOnce sync.Once
}

// Start starts the watchdog and returns once it is ready to clean up.
// Call it before installing anything, and Exit on the way out.
func Start(o Options) (*Handle, error) {
	if o.Path == "" {
		o.Path = SelfExe
	}
	if len(o.Args) == 0 {
		return nil, errors.New("starting the watchdog: no arguments")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.ExitWait <= 0 {
		o.ExitWait = DefaultExitWait
	}
	if o.RespawnDelay <= 0 {
		o.RespawnDelay = DefaultRespawnDelay
	}
	c, err := spawn(&o)
	if err != nil {
		return nil, fmt.Errorf("starting the failsafe watchdog: %w", err)
	}
	h := &Handle{opts: o, log: o.Log, cur: c, stop: make(chan struct{}), done: make(chan struct{})}
	go h.supervise()
	return h, nil
}

// Pid is the current watchdog's process id.
func (h *Handle) Pid() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur.cmd.Process.Pid
}

// Reload tells the watchdog to re-read the config.
func (h *Handle) Reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur.send(MsgReload)
}

// supervise restarts the watchdog when it dies before Exit.
func (h *Handle) supervise() {
	defer close(h.done)
	for {
		h.mu.Lock()
		c := h.cur
		h.mu.Unlock()
		select {
		case <-h.stop:
			return
		case <-c.exited:
		}
		c.control.Close()
		h.log.Error("watchdog exited while gatewayd runs; restarting it (until then a crash would leave the rules in place)",
			"pid", c.cmd.Process.Pid, "err", c.err)
		nc, ok := h.respawn()
		if !ok {
			return
		}
		h.mu.Lock()
		h.cur = nc
		h.mu.Unlock()
		h.log.Info("watchdog restarted", "pid", nc.cmd.Process.Pid)
	}
}

// respawn starts a new watchdog after a pause that grows on failures; it
// gives up (false) only when Exit is called.
func (h *Handle) respawn() (*child, bool) {
	delay := h.opts.RespawnDelay
	for {
		t := time.NewTimer(delay)
		select {
		case <-h.stop:
			t.Stop()
			return nil, false
		case <-t.C:
		}
		c, err := spawn(&h.opts)
		if err == nil {
			return c, true
		}
		h.log.Error("restarting the watchdog failed", "err", err, "retry_in", 2*delay)
		delay = min(2*delay, maxRespawnDelay)
	}
}

// Exit ends the watchdog as the daemon exits. cleaned says the daemon
// removed its interception itself: the watchdog is told so and exits at
// once. Otherwise (an error exit) the pipe just closes, the watchdog
// applies the failsafe policy as after a crash, and Exit waits for it, so
// that a supervisor restarting the daemon finds the cleanup done; the
// caller must release the state lock first. Later calls do nothing.
func (h *Handle) Exit(cleaned bool) {
	h.exitOnce.Do(func() { h.exit(cleaned) })
}

func (h *Handle) exit(cleaned bool) {
	close(h.stop)
	<-h.done // no restart races with what follows
	c := h.cur
	pid := c.cmd.Process.Pid
	select {
	case <-c.exited:
		return // it died and could not be restarted; supervise logged it
	default:
	}
	if cleaned {
		if err := c.send(MsgCleanExit); err != nil {
			h.log.Warn("telling the watchdog gatewayd exited cleanly", "err", err)
		}
	}
	c.control.Close()
	if c.wait(h.opts.ExitWait) {
		if c.err != nil {
			h.log.Warn("watchdog exit status", "pid", pid, "err", c.err)
		}
		return
	}
	if cleaned { // nothing left for it to do
		h.log.Warn("watchdog did not exit after a clean shutdown; killing it", "pid", pid)
		_ = c.cmd.Process.Kill()
		<-c.exited
		return
	}
	h.log.Warn("watchdog still cleaning up; leaving it running", "pid", pid, "waited", h.opts.ExitWait)
}
