package tcp

import (
	"fmt"
	"net"

	"github.com/gatewayd/gatewayd/internal/listen"
	"golang.org/x/sys/unix"
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
	var backoff listen.Backoff
	for {
		c, err := ln.AcceptTCP()
		if err == nil {
			backoff.Reset()
			s.dispatch(c)
			continue
		}
		if s.listenersStopped() {
			return nil
		}
		if !listen.IsOneOf(err, temporaryAcceptErrors) {
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		pause := backoff.Next()
		s.log.Warn("tcp accept failed, retrying", "addr", ln.Addr().String(), "err", err, "backoff", pause)
		if !listen.Sleep(pause, s.done) {
			return nil
		}
	}
}

func (s *Server) listenersStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}
