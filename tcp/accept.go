package tcp

import (
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// Backoff after a temporary accept error (descriptor or memory exhaustion,
// a connection that died in the queue), doubling up to the maximum.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// temporaryAcceptErrors are accept(2) errors after which the listener is
// still fine. Linux also reports pending network errors of the new
// connection through accept; accept(2) says to retry those.
var temporaryAcceptErrors = []error{
	unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM,
	unix.ECONNABORTED, unix.ECONNRESET, unix.EPERM, unix.EINTR,
	unix.EPROTO, unix.ENETDOWN, unix.ENOPROTOOPT, unix.EHOSTDOWN,
	unix.ENONET, unix.EHOSTUNREACH, unix.EOPNOTSUPP, unix.ENETUNREACH,
}

// acceptLoop accepts on ln until the listener is closed.
func (s *Server) acceptLoop(ln *net.TCPListener) error {
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err == nil {
			backoff = 0
			s.dispatch(c)
			continue
		}
		if s.listenersStopped() {
			return nil
		}
		if !isTemporaryAccept(err) {
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
		s.log.Warn("tcp accept failed, retrying", "addr", ln.Addr().String(), "err", err, "backoff", backoff)
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-s.done:
			timer.Stop()
			return nil
		}
	}
}

func (s *Server) listenersStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

func isTemporaryAccept(err error) bool {
	for _, t := range temporaryAcceptErrors {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
