package udp

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxDatagram is the receive buffer size: the largest IP datagram. TPROXY
// (like any local delivery) reassembles fragments, so datagrams arrive
// whole and a smaller buffer would truncate them.
const maxDatagram = 65535

// bufferLinger is how long a session's reader keeps its receive buffer
// after the last datagram before it returns the buffer to the pool and
// waits without one. Idle sessions thus hold no 64 KiB buffers, and busy
// ones pay for the bufferless wait once per burst, not per datagram.
const bufferLinger = time.Second

// pump relays datagrams from up to the session's client until up fails or
// is closed.
func (s *Server) pump(ss *session, up Upstream) error {
	wait := readWaiter(up)
	var slot replySlot
	for {
		if wait != nil {
			if err := wait(); err != nil {
				return fmt.Errorf("waiting for upstream datagrams: %w", err)
			}
		}
		if err := s.burst(ss, up, &slot, wait != nil); err != nil {
			return fmt.Errorf("reading upstream: %w", err)
		}
	}
}

// burst reads datagrams into one pooled buffer. With linger it returns nil
// once up has been quiet for bufferLinger; otherwise it only returns
// errors.
func (s *Server) burst(ss *session, up Upstream, slot *replySlot, linger bool) error {
	bp := s.bufs.Get().(*[]byte)
	s.bufsHeld.Add(1)
	defer func() {
		s.bufsHeld.Add(-1)
		s.bufs.Put(bp)
	}()
	buf := *bp
	lastRead := s.now()
	if linger {
		if err := up.SetReadDeadline(time.Now().Add(s.linger)); err != nil {
			return err
		}
	}
	for {
		n, from, err := up.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !linger || !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			quiet := time.Duration(s.now() - lastRead)
			if quiet >= s.linger {
				return up.SetReadDeadline(time.Time{})
			}
			if err := up.SetReadDeadline(time.Now().Add(s.linger - quiet)); err != nil {
				return err
			}
			continue
		}
		lastRead = s.now()
		s.deliver(ss, slot, buf[:n], from, lastRead)
	}
}

// readWaiter returns a function that blocks until up has a datagram
// queued, without a buffer, or nil if up does not expose its descriptor.
// The readiness check is a zero-timeout poll(2), which also sees
// zero-length datagrams. RawConn.Read clears the poller's readiness before
// the first check, so a datagram arriving after the check wakes the wait.
func readWaiter(up Upstream) func() error {
	sc, ok := up.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var pfd [1]unix.PollFd
	readable := func(fd uintptr) bool {
		pfd[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
		n, err := unix.Poll(pfd[:], 0)
		// On an error, let the real read report it.
		return n > 0 || err != nil
	}
	return func() error { return rc.Read(readable) }
}
