package watchdog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// SelfExe is the running binary, even if the file was replaced or removed
// since (an upgrade in place): the watchdog is the same build.
const SelfExe = "/proc/self/exe"

// Defaults of Options.
const (
	// DefaultReadyTimeout bounds the watchdog's start: loading the config
	// and opening netlink and iptables take milliseconds.
	DefaultReadyTimeout = 10 * time.Second
	// DefaultExitWait bounds how long the daemon waits on its way out for
	// the watchdog to exit: after MsgCleanExit at once; after handing a
	// cleanup to it, the cleanup's iptables calls (each may wait 5 s for
	// the xtables lock).
	DefaultExitWait = 15 * time.Second
	// DefaultRespawnDelay is the first pause before restarting a watchdog
	// that died while the daemon runs; it doubles on failed starts, up to
	// maxRespawnDelay, so a watchdog that cannot start does not spin.
	DefaultRespawnDelay = time.Second
	maxRespawnDelay     = time.Minute
)

// Options configure Start.
type Options struct {
	// Path is the executable (default SelfExe) and Args its argv,
	// including argv[0], e.g. {"gatewayd", "watchdog", "-c", FILE}.
	Path string
	Args []string
	// Stderr is the watchdog's stderr. Pass the daemon's own *os.File so
	// that the watchdog writes to it directly: through any other writer
	// the copying happens in the daemon and dies with it. Nil discards.
	Stderr io.Writer
	Log    *slog.Logger
	// Zero values take the defaults above.
	ReadyTimeout time.Duration
	ExitWait     time.Duration
	RespawnDelay time.Duration
}

// child is one watchdog process and the daemon's end of its pipe.
type child struct {
	cmd     *exec.Cmd
	control *os.File      // write end of the control pipe
	exited  chan struct{} // closed when cmd.Wait returned
	err     error         // cmd.Wait's result, valid after exited
}

// spawn starts a watchdog and waits until it is ready. On any failure the
// process is gone again when spawn returns.
func spawn(o *Options) (*child, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating the control pipe: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, fmt.Errorf("creating the ready pipe: %w", err)
	}
	defer readyR.Close()
	cmd := &exec.Cmd{
		Path:       o.Path,
		Args:       o.Args,
		Stderr:     o.Stderr,
		ExtraFiles: []*os.File{ctlR, readyW}, // ControlFD, ReadyFD
		// Its own session: signals to the daemon's process group and the
		// terminal's hang-up do not reach it. No Pdeathsig, on purpose.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	err = cmd.Start()
	ctlR.Close() // the watchdog's ends; the daemon keeps only ctlW
	readyW.Close()
	if err != nil {
		ctlW.Close()
		return nil, fmt.Errorf("starting %s: %w", o.Path, err)
	}
	c := &child{cmd: cmd, control: ctlW, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	if err := awaitReady(readyR, o.ReadyTimeout); err != nil {
		_ = cmd.Process.Kill() // ours, not yet guarding anything
		<-c.exited
		ctlW.Close()
		if c.err != nil {
			err = fmt.Errorf("%w (%v)", err, c.err)
		}
		return nil, err
	}
	return c, nil
}

// awaitReady reads the watchdog's ready byte and then the end of the pipe,
// so that a ready watchdog holds nothing but its control pipe and stdio.
func awaitReady(r *os.File, timeout time.Duration) error {
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return fmt.Errorf("waiting for the watchdog: %w", err)
	}
	var b [2]byte
	n, err := io.ReadFull(r, b[:])
	switch {
	case n == 1 && b[0] == readyByte && errors.Is(err, io.ErrUnexpectedEOF):
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("watchdog not ready within %v", timeout)
	case n == 0:
		return fmt.Errorf("watchdog exited before it was ready: %w", err)
	}
	return fmt.Errorf("watchdog sent %q instead of its ready byte", b[:n])
}

// send writes one control message.
func (c *child) send(msg byte) error {
	if _, err := c.control.Write([]byte{msg}); err != nil {
		return fmt.Errorf("writing to the watchdog (pid %d): %w", c.cmd.Process.Pid, err)
	}
	return nil
}

// wait waits up to d for the watchdog to exit.
func (c *child) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
		return false
	}
}
