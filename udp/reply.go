package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/udpio"
)

// errLocalSource refuses to spoof a source that is gatewayd's own host.
var errLocalSource = errors.New("remote is a local or multicast address")

// replySock is a transparent socket bound to a remote address:port. It
// sends that remote's datagrams to clients, so they arrive from the address
// the client talked to (or, full cone, from the remote that found the
// client's mapping). It is unconnected and never read: without a UDP
// `-m socket` rule, TPROXY ignores unconnected sockets and later client
// datagrams keep going to the listener.
//
// Reply sockets are shared by all sessions (SO_REUSEADDR lets a second one
// bind the same address while another is being replaced) and cached by
// remote address with LRU eviction and idle expiry.
type replySock struct {
	conn *net.UDPConn
	raw  *udpio.Sock  // conn's descriptor for batched sends, if it has one
	last atomic.Int64 // server clock at the last send
}

func (r *replySock) lastActive() int64 { return r.last.Load() }

func (r *replySock) touch(now int64) {
	if r.last.Load() < now {
		r.last.Store(now)
	}
}

// replySlot is a session reader's own reference to the reply socket it used
// last, so a session answered by one remote finds its socket without
// taking a table lock per datagram.
type replySlot struct {
	remote netip.AddrPort
	rs     *replySock

	// The run of datagrams from one remote, which decides between the raw
	// sockets and a bound one (bulkAfter).
	runRemote netip.AddrPort
	run       int
}

// bulk counts a datagram from remote and reports whether remote has sent
// more than bulkAfter in a row: it then gets a bound reply socket.
func (slot *replySlot) bulk(remote netip.AddrPort) bool {
	if slot.runRemote != remote {
		slot.runRemote, slot.run = remote, 0
	}
	if slot.run <= bulkAfter {
		slot.run++
	}
	return slot.run > bulkAfter
}

// unbulk restarts the run: no bound socket could be had, so the raw
// sockets serve the remote, and the next bulkAfter datagrams try none.
func (slot *replySlot) unbulk() { slot.run = 0 }

// deliver sends a datagram that remote sent to the session's upstream on to
// the client, from a reply socket bound to remote. A socket closed by the
// sweeper or an eviction between lookup and send is replaced once.
func (s *Server) deliver(ss *session, slot *replySlot, p []byte, remote netip.AddrPort, now int64) {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	if s.raw != nil && !slot.bulk(remote) && s.deliverRaw(ss, p, remote, now) {
		return
	}
	for range 2 {
		rs, err := s.replyFor(slot, remote, now)
		if err != nil {
			// No bound socket (at the fd limit?): the raw sockets will do.
			if s.raw == nil || errors.Is(err, errLocalSource) || !s.deliverRaw(ss, p, remote, now) {
				s.countReplyError(remote, err, 1)
			} else {
				slot.unbulk()
			}
			return
		}
		_, err = rs.conn.WriteToUDPAddrPort(p, ss.client)
		if err == nil {
			ss.touch(now)
			s.countDown(ss, 1, len(p))
			return
		}
		slot.rs = nil
		if !errors.Is(err, net.ErrClosed) {
			break
		}
	}
	s.stats.dropSendDown.Add(1)
}

// replyFor returns the reply socket for remote (unmapped): the slot's if
// it is remote's, else the cached or a new one, which then fills the slot.
func (s *Server) replyFor(slot *replySlot, remote netip.AddrPort, now int64) (*replySock, error) {
	if rs := slot.rs; rs != nil && slot.remote == remote {
		rs.touch(now)
		return rs, nil
	}
	rs, err := s.reply(remote, now)
	if err != nil {
		return nil, err
	}
	slot.remote, slot.rs = remote, rs
	return rs, nil
}

// countReplyError counts n datagrams from remote dropped because no reply
// socket could be had for it (err from replyFor).
func (s *Server) countReplyError(remote netip.AddrPort, err error, n int) {
	if errors.Is(err, errLocalSource) {
		s.stats.dropLocalSource.Add(uint64(n))
		return
	}
	s.stats.dropReplySocket.Add(uint64(n))
	if s.warnedReply.CompareAndSwap(false, true) {
		s.log.Warn("udp reply socket failed (logged once)", "remote", remote.String(), "err", err)
	}
}

// reply returns the cached reply socket for remote, opening one if needed.
func (s *Server) reply(remote netip.AddrPort, now int64) (*replySock, error) {
	if rs, ok := s.replies.get(remote); ok {
		rs.touch(now)
		return rs, nil
	}
	if !s.cfg.FDs.Take(1) {
		return nil, fmt.Errorf("binding reply socket to %s: %w", remote, errFDBudget)
	}
	conn, err := s.openReply(remote)
	if err != nil {
		s.cfg.FDs.Give(1)
		return nil, err
	}
	rs := &replySock{conn: conn, raw: udpio.NewSock(conn)}
	rs.last.Store(now)
	got, added := s.replies.add(remote, rs)
	if !added {
		s.closeReply(rs)
		got.touch(now)
		return got, nil
	}
	for s.replies.len() > s.cfg.MaxReplySockets {
		victim, ok := s.replies.popOldest(rs)
		if !ok {
			break
		}
		s.closeReply(victim)
	}
	return rs, nil
}

// errFDBudget: the descriptor budget is spent.
var errFDBudget = errors.New("descriptor budget spent")

// closeReply closes a bound reply socket and gives its descriptor back.
func (s *Server) closeReply(rs *replySock) {
	_ = rs.conn.Close()
	s.cfg.FDs.Give(1)
}

// spoofable reports whether gatewayd may send from a as if it were the
// remote. Its own addresses are not foreign (binding would share a port
// with a local service) and multicast or unspecified ones are no sources.
func (s *Server) spoofable(a netip.Addr) bool {
	if a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	return s.cfg.IsLocal == nil || !s.cfg.IsLocal(a)
}

// openReplySocket binds a transparent (IP_TRANSPARENT, SO_REUSEADDR,
// SO_MARK=BypassMark) UDP socket of remote's family to remote, unless remote
// must not be spoofed.
func (s *Server) openReplySocket(remote netip.AddrPort) (*net.UDPConn, error) {
	if !s.spoofable(remote.Addr()) {
		return nil, fmt.Errorf("binding reply socket to %s: %w", remote, errLocalSource)
	}
	return listen.ReplySocket(remote, s.cfg.BypassMark)
}

// deliverRaw sends one datagram from remote (unmapped) to the session's
// client by raw socket. It reports false, doing nothing, if the raw
// sockets cannot be had: the caller uses a bound socket.
func (s *Server) deliverRaw(ss *session, p []byte, remote netip.AddrPort, now int64) bool {
	b := s.rawBatches.Get().(*rawBatch)
	defer s.rawBatches.Put(b)
	if !s.addRaw(ss, b, p, remote) {
		return false
	}
	s.flushRaw(ss, b, now)
	return true
}

// addRaw queues one datagram from remote (unmapped) to the session's
// client in b, or counts why it cannot be sent. It reports false, doing
// nothing, if the raw sockets cannot be had.
func (s *Server) addRaw(ss *session, b *rawBatch, p []byte, remote netip.AddrPort) bool {
	snd, err := s.raw.sender(remote.Addr().Is6(), hashAddrPort(ss.client, 0), s.now())
	if err != nil {
		if s.warnedRaw.CompareAndSwap(false, true) {
			s.log.Warn("udp raw reply sockets failed, replying from bound sockets (logged once)", "err", err)
		}
		return false
	}
	if !s.spoofable(remote.Addr()) {
		s.stats.dropLocalSource.Add(1)
		return true
	}
	var id uint32
	mtu := s.replyMTU(ss, len(p))
	if len(p)+ipv6HdrLen+udpHdrLen > mtu {
		id = s.raw.nextFragID()
	}
	if !b.add(snd, remote, ss.client, p, mtu, id) {
		s.stats.dropSendDown.Add(1)
	}
	return true
}

// flushRaw sends what b holds and counts it for the session.
func (s *Server) flushRaw(ss *session, b *rawBatch, now int64) {
	if b.n > 0 && b.flush() != nil {
		// The socket was closed (expired while idle, or Shutdown): try
		// the family's current one once.
		snd, err := s.raw.sender(b.snd.inet6, hashAddrPort(ss.client, 0), s.now())
		if err == nil {
			b.snd = snd
		}
		if err != nil || b.flush() != nil {
			b.abandon()
		}
	}
	sent, bytes, dropped, tooBig := b.take()
	if tooBig {
		ss.mtu.Store(0) // the route's MTU shrank: look again
	}
	if sent > 0 {
		ss.touch(now)
		s.countDown(ss, sent, bytes)
		s.stats.datagramsDownRaw.Add(uint64(sent))
	}
	if dropped > 0 {
		s.stats.dropSendDown.Add(uint64(dropped))
	}
}
