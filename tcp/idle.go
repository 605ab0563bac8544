package tcp

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// idleRecheckFloor is the shortest deadline extension. It bounds how often
// a flow on the verge of going idle is re-examined (TCP_INFO reports in
// milliseconds, the kernel counts in jiffies).
const idleRecheckFloor = 10 * time.Millisecond

// idleWatch closes flows that carry no data either way for timeout, without
// wrapping the conns (which would lose splice). Both conns get read
// deadlines only: a write deadline could fire while data sits in the splice
// pipe and that data would be lost. When a read deadline fires, the kernel's
// TCP_INFO tells whether either socket received data recently, i.e. whether
// the other direction is still busy.
type idleWatch struct {
	timeout time.Duration // <= 0: no idle timeout
	conns   [2]*net.TCPConn
}

// arm sets the first read deadlines.
func (w idleWatch) arm() {
	if w.timeout > 0 {
		w.setDeadlines(w.timeout)
	}
}

// active is called after a read deadline fired. It reports whether the flow
// is still active; if so it has pushed both read deadlines to the moment the
// flow would become idle.
func (w idleWatch) active() bool {
	if w.timeout <= 0 {
		return false
	}
	var quiet [2]time.Duration
	for i, c := range w.conns {
		q, err := sinceDataRecv(c)
		if err != nil {
			return false // closed meanwhile: nothing to keep alive
		}
		quiet[i] = q
	}
	wait, ok := idleRemaining(w.timeout, quiet[:]...)
	if !ok {
		return false
	}
	return w.setDeadlines(wait) == nil
}

func (w idleWatch) setDeadlines(d time.Duration) error {
	deadline := time.Now().Add(d)
	for _, c := range w.conns {
		if err := c.SetReadDeadline(deadline); err != nil {
			return fmt.Errorf("setting read deadline: %w", err)
		}
	}
	return nil
}

// idleRemaining decides from the time since each socket last received data
// whether the flow is idle. If it is not, it returns how long from now the
// flow would become idle if nothing more arrives (at least idleRecheckFloor).
func idleRemaining(timeout time.Duration, quiet ...time.Duration) (time.Duration, bool) {
	if len(quiet) == 0 {
		return 0, false
	}
	least := quiet[0]
	for _, q := range quiet[1:] {
		least = min(least, q)
	}
	if least >= timeout {
		return 0, false
	}
	return max(timeout-least, idleRecheckFloor), true
}

// sinceDataRecv returns how long ago the socket last received data
// (TCP_INFO tcpi_last_data_recv).
func sinceDataRecv(c *net.TCPConn) (time.Duration, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("reading TCP_INFO: %w", err)
	}
	var info *unix.TCPInfo
	var serr error
	err = raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("reading TCP_INFO: %w", err)
	}
	return time.Duration(info.Last_data_recv) * time.Millisecond, nil
}
