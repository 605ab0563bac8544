package tcp

import (
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// idleRecheckFloor is the shortest wait before the idle timer looks again.
// It bounds how often a flow on the verge of going idle is re-examined
// (TCP_INFO reports in milliseconds, the kernel counts in jiffies).
const idleRecheckFloor = 10 * time.Millisecond

// idleTimer ends a flow that carried no data either way for timeout. It
// costs one runtime timer per flow and no goroutine: when it fires, the
// kernel's TCP_INFO tells how long ago either socket last received data, and
// the timer is pushed to the moment the flow would become idle, or the flow
// is ended.
type idleTimer struct {
	timeout time.Duration // <= 0: no idle timeout
	t       atomic.Pointer[time.Timer]
}

// arm starts watching f.
func (w *idleTimer) arm(f *relayFlow, timeout time.Duration) {
	if timeout <= 0 {
		return
	}
	w.timeout = timeout
	t := time.AfterFunc(time.Duration(1<<62), func() { w.check(f) }) // stored before it can fire
	w.t.Store(t)
	t.Reset(timeout)
}

// check runs when the timer fires.
func (w *idleTimer) check(f *relayFlow) {
	wait, active := w.remaining(f.conns)
	if !active {
		f.end(reasonIdle, nil, false)
		return
	}
	w.t.Load().Reset(wait)
}

// remaining reports whether the flow is still active and, if so, how long
// until it would become idle.
func (w *idleTimer) remaining(conns [2]*net.TCPConn) (time.Duration, bool) {
	var quiet [2]time.Duration
	for i, c := range conns {
		q, err := sinceDataRecv(c)
		if err != nil {
			return 0, false // closed meanwhile: the flow is ending anyway
		}
		quiet[i] = q
	}
	return idleRemaining(w.timeout, quiet[:]...)
}

func (w *idleTimer) stop() {
	if t := w.t.Load(); t != nil {
		t.Stop()
	}
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
