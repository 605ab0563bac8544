package udp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Batch sizes: datagrams per recvmmsg. A listener keeps its batch for its
// whole life; a session reader takes a sessionBatch from a pool only while
// its upstream outruns it (see burst).
const (
	listenerBatch = 32
	sessionBatch  = 16
)

// bufferLinger is how long a session's reader keeps its receive buffers
// after the last datagram before it returns them to the pool and waits
// without any. Idle sessions thus hold no buffers, and busy ones pay for
// the bufferless wait once per burst, not per datagram.
const bufferLinger = time.Second

// maxLingering bounds the receive buffers session readers keep between
// datagrams, in 64 KiB buffers (16 MiB). Beyond it a reader gives its
// buffers back after every read and waits without any: a flood that keeps
// thousands of sessions busy costs a pool round trip per datagram instead
// of 64 KiB to 1 MiB per session (4 096 sessions held 256 MiB).
const maxLingering = 256

// A session reader starts a burst with a one-datagram batch (one 64 KiB
// buffer, what an idle-then-answered session like DNS needs) and moves to
// a sessionBatch-datagram one when a read finds datagrams already queued:
// the upstream is delivering faster than one datagram per wakeup. After
// shrinkAfter reads in a row that had to wait and got one datagram, it
// goes back to the small batch.
const shrinkAfter = 64

// downBatch is what a session reader holds during a burst: its receive
// batch and the send batch for the replies.
type downBatch struct {
	rb  *udpio.RecvBatch
	sb  *udpio.SendBatch
	raw *rawBatch
	big bool
}

func newDownBatch(n int) *downBatch {
	return &downBatch{rb: udpio.NewRecvBatch(n, 0), sb: udpio.NewSendBatch(n), raw: newRawBatch(), big: n > 1}
}

// batchBuffers is what a batch counts against maxLingering.
func batchBuffers(big bool) int64 {
	if big {
		return sessionBatch
	}
	return 1
}

// getBatch takes a small or big batch from its pool.
func (s *Server) getBatch(big bool) *downBatch {
	s.bufsHeld.Add(batchBuffers(big))
	if big {
		return s.bigBatches.Get().(*downBatch)
	}
	return s.smallBatches.Get().(*downBatch)
}

func (s *Server) putBatch(b *downBatch) {
	s.bufsHeld.Add(-batchBuffers(b.big))
	b.sb.Begin(nil)
	if b.big {
		s.bigBatches.Put(b)
	} else {
		s.smallBatches.Put(b)
	}
}

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

// burst reads datagrams into pooled buffers. With linger it returns nil
// once up has been quiet for bufferLinger; otherwise it only returns
// errors.
func (s *Server) burst(ss *session, up Upstream, slot *replySlot, linger bool) error {
	b := s.getBatch(false)
	defer func() { s.putBatch(b) }()
	lastRead := s.now()
	if linger {
		if err := up.SetReadDeadline(time.Now().Add(s.linger)); err != nil {
			return err
		}
	}
	thin := 0 // reads in a row that waited for a single datagram
	for reads := 0; ; reads++ {
		var (
			n    int
			from netip.AddrPort
			err  error
		)
		if ss.rawIn != nil {
			err = b.rb.Read(ss.rawIn.RawConn())
		} else {
			n, from, err = up.ReadFromUDPAddrPort(b.rb.Buffer(0))
		}
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
		if ss.rawIn == nil {
			s.deliver(ss, slot, b.rb.Buffer(0)[:n], from, lastRead)
		} else {
			s.deliverBatch(ss, slot, b, lastRead)
		}
		if linger && s.bufsHeld.Load() > maxLingering {
			return up.SetReadDeadline(time.Time{}) // too many readers hold buffers: wait without
		}
		if ss.rawIn == nil {
			continue
		}
		// Resize: a read that found datagrams queued (not the first, which
		// the bufferless wait made sure of) means the upstream is busy.
		switch {
		case !b.big && !b.rb.Waited() && reads > 0 && s.bufsHeld.Load()+sessionBatch <= maxLingering: // a big batch only while buffers are not scarce
			s.putBatch(b)
			b, thin = s.getBatch(true), 0
		case b.big && b.rb.Waited() && b.rb.Len() == 1:
			if thin++; thin >= shrinkAfter {
				s.putBatch(b)
				b = s.getBatch(false)
			}
		default:
			thin = 0
		}
	}
}

// deliverBatch sends the datagrams of the last read on to the client:
// those of remotes that are not streaming go by raw socket, all in one
// sendmmsg; consecutive ones from a streaming remote leave together from
// its bound reply socket (sendmmsg, and UDP GSO as they all go to the
// client).
func (s *Server) deliverBatch(ss *session, slot *replySlot, b *downBatch, now int64) {
	rb, sb := b.rb, b.sb
	var (
		remote netip.AddrPort // of the datagrams in sb
		rs     *replySock     // its socket; nil: its datagrams are dropped
		rerr   error          // why rs is nil
		have   bool           // remote is set
	)
	defer s.flushRaw(ss, b.raw, now)
	for i := range rb.Len() {
		if rb.Flags(i)&unix.MSG_TRUNC != 0 {
			s.stats.dropTruncated.Add(1)
			continue
		}
		from, ok := rb.Source(i)
		if !ok {
			s.stats.dropSendDown.Add(1)
			continue
		}
		p := rb.Datagram(i)
		if s.raw != nil && !slot.bulk(from) && s.addRaw(ss, b.raw, p, from) {
			continue
		}
		if b.raw.n > 0 {
			s.flushRaw(ss, b.raw, now) // the remote's raw datagrams go first
		}
		if !have || from != remote {
			s.flushDown(ss, slot, sb, remote, now)
			remote, have = from, true
			if rs, rerr = s.replyFor(slot, remote, now); rerr == nil && rs.raw != nil {
				sb.Begin(rs.raw)
			}
		}
		switch {
		case rs == nil && s.raw != nil && !errors.Is(rerr, errLocalSource) && s.addRaw(ss, b.raw, p, remote):
			// No bound socket (at the fd limit?): the raw sockets will do.
			slot.unbulk()
			have = false // try again after the next bulkAfter
		case rs == nil:
			s.countReplyError(remote, rerr, 1)
		case rs.raw == nil:
			s.deliver(ss, slot, p, remote, now)
		case !sb.Add(p, ss.client):
			s.stats.dropSendDown.Add(1)
		}
	}
	s.flushDown(ss, slot, sb, remote, now)
}

// flushDown sends what sb holds for remote. Datagrams a closed reply
// socket did not take go the one-datagram way, which replaces the socket.
func (s *Server) flushDown(ss *session, slot *replySlot, sb *udpio.SendBatch, remote netip.AddrPort, now int64) {
	if sb.Sock() == nil || sb.Empty() {
		return
	}
	err := sb.Flush()
	if n, bytes := sb.Sent(); n > 0 {
		ss.touch(now)
		s.countDown(ss, n, bytes)
	}
	if n := sb.Dropped(); n > 0 {
		s.stats.dropSendDown.Add(uint64(n))
	}
	if err != nil {
		slot.rs = nil
		for _, it := range sb.Unsent() {
			s.deliver(ss, slot, it.Payload, remote, now)
		}
	}
	sb.Begin(nil)
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
