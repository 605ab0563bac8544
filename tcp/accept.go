package tcp

import (
	"fmt"
	"net"
	"sync"

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
			s.admit(c)
			continue
		}
		if s.listenersStopped() {
			return nil
		}
		if !listen.IsOneOf(err, temporaryAcceptErrors) {
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		if listen.IsOneOf(err, fdsExhausted) && s.spare.shed(ln, s.refuseShed) {
			continue
		}
		pause := backoff.Next()
		s.log.Warn("tcp accept failed, retrying", "addr", ln.Addr().String(), "err", err, "backoff", pause)
		if !listen.Sleep(pause, s.done) {
			return nil
		}
	}
}

// fdsExhausted are the accept errors of a full descriptor table.
var fdsExhausted = []error{unix.EMFILE, unix.ENFILE}

// refuseShed resets a client accepted with the spare descriptor.
func (s *Server) refuseShed(c *net.TCPConn) {
	s.stats.accepted.Add(1)
	s.stats.fdRefused.Add(1)
	s.refuse(c, reasonFDs)
}

// spareFD is one descriptor held open for the moment the table is full:
// closed, it lets accept take one waiting client, which is reset at once,
// instead of leaving every client hanging in the backlog until its connect
// times out.
type spareFD struct {
	mu   sync.Mutex
	fd   int
	held bool
}

// open takes the spare descriptor (Serve calls it).
func (sp *spareFD) open() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.reopen()
}

func (sp *spareFD) reopen() {
	if sp.held {
		return
	}
	fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	sp.fd, sp.held = fd, err == nil
}

// shed accepts one client on ln with the spare descriptor and hands it to
// refuse; false when there is no spare or another part of the process took
// the freed descriptor first.
func (sp *spareFD) shed(ln *net.TCPListener, refuse func(*net.TCPConn)) bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.reopen(); !sp.held {
		return false
	}
	sp.close()
	c, err := ln.AcceptTCP()
	if err == nil {
		refuse(c) // closes c, so the spare can be taken again
	}
	sp.reopen()
	return err == nil
}

// release gives the spare descriptor back (Shutdown calls it).
func (sp *spareFD) release() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.close()
}

func (sp *spareFD) close() {
	if sp.held {
		_ = unix.Close(sp.fd)
		sp.held = false
	}
}

func (s *Server) listenersStopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}
