package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/listen"
	"golang.org/x/sys/unix"
)

// temporaryReadErrors are recvmsg(2) errors after which the listener is
// still fine: memory pressure, and ICMP errors queued on the socket.
var temporaryReadErrors = []error{
	unix.ENOMEM, unix.ENOBUFS, unix.EINTR,
	unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH,
}

// readLoop receives on ln until the listener is closed. Everything it does
// per datagram reuses its two buffers and allocates nothing once the
// client's session exists.
func (s *Server) readLoop(ln *net.UDPConn) error {
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	var backoff listen.Backoff
	for {
		n, oobn, flags, client, err := ln.ReadMsgUDPAddrPort(buf, oob)
		if err == nil {
			backoff.Reset()
			s.handleDatagram(buf[:n], oob[:oobn], flags, client)
			continue
		}
		if s.listenersStopped() {
			return nil
		}
		if !listen.IsOneOf(err, temporaryReadErrors) {
			return fmt.Errorf("receiving on %s: %w", ln.LocalAddr(), err)
		}
		pause := backoff.Next()
		s.log.Warn("udp receive failed, retrying", "addr", ln.LocalAddr().String(), "err", err, "backoff", pause)
		if !listen.Sleep(pause, s.done) {
			return nil
		}
	}
}

// handleDatagram relays one datagram a client sent: decode its original
// destination, guard against loops, find or create the client's session,
// send. It allocates nothing when the session exists.
func (s *Server) handleDatagram(p, oob []byte, flags int, client netip.AddrPort) {
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		s.stats.dropCtrunc.Add(1)
		return
	case flags&unix.MSG_TRUNC != 0:
		s.stats.dropTruncated.Add(1)
		return
	}
	dst, err := origDst(oob)
	if err != nil {
		s.stats.dropNoOrigDst.Add(1)
		if s.warnedNoOrigDst.CompareAndSwap(false, true) {
			s.log.Warn("udp datagram without original destination, dropped (logged once)",
				"client", client.String(), "err", err)
		}
		return
	}
	if s.guard.Load().Refuses(dst) {
		s.stats.dropLoop.Add(1)
		return
	}
	client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	if dst.Addr().Is4() != client.Addr().Is4() {
		s.stats.dropFamily.Add(1)
		return
	}
	now := s.now()
	dstHash := hashAddrPort(dst, 0) | 1 // never 0, the "no destination yet" value
	for range 2 {
		ss, ok := s.sessions.get(client)
		if !ok {
			var queued bool
			if ss, queued = s.newSession(client, now, p, dst); queued {
				ss.noteDst(dst, dstHash)
				return
			}
		}
		ss.touch(now)
		ss.noteDst(dst, dstHash)
		err := s.send(ss, p, dst)
		if err == nil {
			return
		}
		if !errors.Is(err, errSessionClosed) {
			break
		}
		// Evicted, expired or failed between lookup and send: make sure
		// it is out of the table and go again with a new session.
		s.sessions.remove(client, ss)
	}
	s.stats.dropSendUp.Add(1)
}
