package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/udpio"
	"golang.org/x/sys/unix"
)

// temporaryReadErrors are recvmsg(2) errors after which the listener is
// still fine: memory pressure, and ICMP errors queued on the socket.
var temporaryReadErrors = []error{
	unix.ENOMEM, unix.ENOBUFS, unix.EINTR,
	unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH,
}

// upBatch is a listener read loop's state: the datagrams of one recvmmsg,
// and the run of them for one session waiting to go out with sendmmsg.
type upBatch struct {
	rb *udpio.RecvBatch
	sb *udpio.SendBatch
	ss *session // session of the datagrams in sb
}

func newUpBatch() *upBatch {
	return &upBatch{rb: udpio.NewRecvBatch(listenerBatch, udpio.OOBSize()), sb: udpio.NewSendBatch(listenerBatch)}
}

// readLoop receives on ln until the listener is closed, up to
// listenerBatch datagrams per recvmmsg(2). It reuses its batch and
// allocates nothing per datagram once the clients' sessions exist.
func (s *Server) readLoop(ln *net.UDPConn) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return fmt.Errorf("receiving on %s: %w", ln.LocalAddr(), err)
	}
	u := newUpBatch()
	var backoff listen.Backoff
	for {
		err := u.rb.Read(rc)
		if err == nil {
			backoff.Reset()
			s.relayBatch(u)
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

// relayBatch relays the datagrams of the last read, in order. Consecutive
// datagrams of one client whose upstream is open go out together
// (sendmmsg, UDP GSO for runs to one destination); the rest take the
// one-datagram path, which opens sessions and queues.
func (s *Server) relayBatch(u *upBatch) {
	rb := u.rb
	now := s.now()
	var (
		last   sessionKey // client and route of the previous datagram
		lastSS *session   // its session, if it was ready for batching
	)
	for i := range rb.Len() {
		from, ok := rb.Source(i)
		if !ok {
			s.stats.dropNoOrigDst.Add(1)
			continue
		}
		p := rb.Datagram(i)
		dst, client, ok := s.accept(p, rb.Control(i), rb.Flags(i), from)
		if !ok {
			continue
		}
		key, ok := s.route(client, dst, p)
		if !ok {
			continue
		}
		ss := lastSS
		if ss == nil || key != last {
			ss, _ = s.sessions.get(key)
			last, lastSS = key, nil
			if ss != nil && ss.ready.Load() && ss.raw != nil {
				lastSS = ss
			}
		}
		if lastSS == nil {
			s.flushUp(u, now)
			s.relay(key, dst, p, now)
			continue
		}
		if ss != u.ss {
			s.flushUp(u, now)
			u.ss = ss
			u.sb.Begin(ss.raw)
		}
		ss.noteDst(dst, hashAddrPort(dst, 0)|1)
		if !u.sb.Add(p, dst) {
			s.stats.dropSendUp.Add(1)
		}
	}
	s.flushUp(u, now)
}

// flushUp sends the datagrams batched for u.ss. Whatever a closed upstream
// did not take goes the one-datagram way, to a new session.
func (s *Server) flushUp(u *upBatch, now int64) {
	ss := u.ss
	if ss == nil {
		return
	}
	u.ss = nil
	sb := u.sb
	if sb.Empty() {
		return
	}
	ss.touch(now)
	err := sb.Flush()
	if n, bytes := sb.Sent(); n > 0 {
		s.countUp(ss, n, bytes)
	}
	if n := sb.Dropped(); n > 0 {
		s.stats.dropSendUp.Add(uint64(n))
	}
	if err != nil {
		for _, it := range sb.Unsent() {
			s.relay(ss.key, it.Dst, it.Payload, now)
		}
	}
	sb.Begin(ss.raw) // let go of the receive buffers' datagrams
}

// handleDatagram relays one datagram a client sent: decode its original
// destination, guard against loops, find or create the client's session,
// send. It allocates nothing when the session exists.
func (s *Server) handleDatagram(p, oob []byte, flags int, client netip.AddrPort) {
	dst, client, ok := s.accept(p, oob, flags, client)
	if !ok {
		return
	}
	if key, ok := s.route(client, dst, p); ok {
		s.relay(key, dst, p, s.now())
	}
}

// accept checks one received datagram and returns its original destination
// and unmapped client; a refused datagram is counted in its drop counter.
func (s *Server) accept(p, oob []byte, flags int, client netip.AddrPort) (dst, from netip.AddrPort, ok bool) {
	switch {
	case flags&unix.MSG_CTRUNC != 0:
		s.stats.dropCtrunc.Add(1)
		return dst, from, false
	case flags&unix.MSG_TRUNC != 0:
		s.stats.dropTruncated.Add(1)
		return dst, from, false
	}
	dst, err := udpio.OrigDst(oob)
	if err != nil {
		s.stats.dropNoOrigDst.Add(1)
		if s.warnedNoOrigDst.CompareAndSwap(false, true) {
			s.log.Warn("udp datagram without original destination, dropped (logged once)",
				"client", client.String(), "err", err)
		}
		return dst, from, false
	}
	if s.guard.Load().Refuses(dst) {
		s.stats.dropLoop.Add(1)
		return dst, from, false
	}
	from = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
	if dst.Addr().Is4() != from.Addr().Is4() {
		s.stats.dropFamily.Add(1)
		return dst, from, false
	}
	return dst, from, true
}

// relay sends one accepted datagram on the session of key, creating the
// session (with p queued) if there is none, and replacing one that was
// closed between lookup and send.
func (s *Server) relay(key sessionKey, dst netip.AddrPort, p []byte, now int64) {
	dstHash := hashAddrPort(dst, 0) | 1 // never 0, the "no destination yet" value
	for range 2 {
		ss, ok := s.sessions.get(key)
		if !ok {
			var queued bool
			if ss, queued = s.newSession(key, now, p, dst); queued {
				ss.noteDst(dst, dstHash)
				return
			}
			if ss == nil {
				return // no descriptor for it: counted
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
		s.sessions.remove(key, ss)
	}
	s.stats.dropSendUp.Add(1)
}
