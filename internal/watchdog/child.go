package watchdog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The watchdog's descriptors, as Start passes them (exec.Cmd.ExtraFiles
// start at 3).
const (
	// ControlFD is the read end of the control pipe.
	ControlFD = 3
	// ReadyFD is the write end of the ready pipe: the watchdog writes
	// readyByte there once it can clean up, then closes it.
	ReadyFD = 4
)

// readyByte is the watchdog's "ready" on the ready pipe.
const readyByte = 'K'

// ChildPipes returns the control and ready pipes of a watchdog process.
// It fails when they are not pipes (the watchdog was not started by
// Start), marks them close-on-exec so the programs the watchdog runs do
// not inherit them, and closes every other descriptor above them the
// process inherited (a daemon's listening sockets, say).
func ChildPipes() (control, ready *os.File, err error) {
	for _, fd := range []int{ControlFD, ReadyFD} {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return nil, nil, fmt.Errorf("descriptor %d is not the watchdog's pipe: the watchdog is started by `gatewayd run`, not by hand", fd)
		}
		unix.CloseOnExec(fd)
	}
	if err := closeInherited(ReadyFD); err != nil {
		return nil, nil, err
	}
	return os.NewFile(ControlFD, "watchdog-control"), os.NewFile(ReadyFD, "watchdog-ready"), nil
}

// closeInherited closes every descriptor above last, except the Go
// runtime's own (its netpoller's epoll and eventfd are anonymous inodes;
// nothing a daemon hands down is).
func closeInherited(last int) error {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	self := int(dir.Fd())
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd <= last || fd == self {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + name)
		if err != nil || strings.HasPrefix(target, "anon_inode:") {
			continue // gone meanwhile, or the runtime's
		}
		if err := unix.Close(fd); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("closing inherited descriptor %d (%s): %w", fd, target, err)
		}
	}
	return nil
}

// SignalReady tells the daemon the watchdog is ready and closes the pipe.
func SignalReady(ready *os.File) error {
	_, err := ready.Write([]byte{readyByte})
	if cerr := ready.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("signalling readiness to gatewayd: %w", err)
	}
	return nil
}

// ShieldSignals makes the watchdog outlast signals meant for the whole
// service: SIGTERM, SIGINT and SIGHUP are logged and otherwise ignored (it
// exits with the daemon, after cleaning up), and SIGPIPE is ignored so a
// closed stderr makes log writes fail instead of killing it. The returned
// function stops the logging of SIGTERM, SIGINT and SIGHUP (they then take
// their default action again); SIGPIPE stays ignored.
func ShieldSignals(log *slog.Logger) (stop func()) {
	signal.Ignore(syscall.SIGPIPE)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-ch:
				log.Info("watchdog: ignoring signal; it exits when gatewayd does", "signal", sig.String())
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
