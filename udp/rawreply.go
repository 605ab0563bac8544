package udp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Replies without a descriptor per remote. A client that talks to
// thousands of remotes (a BitTorrent DHT node, a P2P game) would otherwise
// cost a transparent socket bound to each remote's address:port. Instead
// its replies leave from one or two raw sockets per family (IPPROTO_RAW,
// so the header is included: send only, they receive nothing), with
// gatewayd writing the IP and UDP headers. The packets are the ones a bound socket
// would send: source the remote's address:port (the client's original
// destination, so they match the reply direction of the client's
// conntrack entry), destination the client, SO_MARK the bypass mark
// (which a raw socket applies to its packets and their route lookup as
// any socket does).
//
// What a raw socket gives up is the kernel's UDP send path: checksum
// offload and UDP GSO. A remote that streams to a session (bulkAfter
// datagrams in a row) therefore gets a bound socket from the reply cache
// as before, and its bursts go out with sendmmsg and GSO.

// bulkAfter is how many datagrams in a row from one remote a session
// reader sends by raw socket before it takes a bound reply socket for
// that remote.
const bulkAfter = 64

// rawRetry is how long after a failed open the raw sockets of a family
// are tried again (bound sockets serve meanwhile).
const rawRetry = 5 * time.Second

// rawSendBuffer is each raw socket's send buffer (SO_SNDBUFFORCE, best
// effort): the replies of many sessions queue there.
const rawSendBuffer = 1 << 20

// rawBatchMsgs is how many packets a raw batch sends per sendmmsg(2).
const rawBatchMsgs = 64

// rawReplier owns the raw reply sockets: rawPerFamily per family, opened
// on first use, so sessions on different CPUs rarely wait for each
// other's sends (Go serialises writes to one descriptor).
type rawReplier struct {
	mark   uint32
	fams   [2]rawFamily // IPv4, IPv6
	fragID atomic.Uint32
	// open opens one raw socket: openRawSender, a seam for tests.
	open func(v6 bool, mark uint32) (*rawSender, error)
}

type rawFamily struct {
	socks   atomic.Pointer[[]*rawSender] // nil until opened, and after an idle period
	used    atomic.Int64                 // server clock at a recent sender call (to the ms)
	retryAt atomic.Int64                 // server clock before which a failed open is not retried
	mu      sync.Mutex
	closed  bool
}

// errRawUnavailable: the last open of a family's raw sockets failed and
// rawRetry has not passed.
var errRawUnavailable = errors.New("raw reply sockets unavailable")

// rawSender is one raw socket.
type rawSender struct {
	f     *os.File
	rc    syscall.RawConn
	inet6 bool
}

func newRawReplier(mark uint32) *rawReplier {
	r := &rawReplier{mark: mark, open: openRawSender}
	r.fragID.Store(rand.Uint32())
	return r
}

// rawPerFamily is the number of raw sockets per family: one per CPU, up
// to two (a home router has two to four; a send holds its socket only
// for the sendmmsg, so two already take most of the waiting away).
func rawPerFamily() int { return min(max(runtime.GOMAXPROCS(0), 1), 2) }

// sender returns the raw socket of v6's family for a session whose client
// hashes to h, opening the family's sockets if needed; an error if they
// cannot be had (the caller falls back to a bound socket).
func (r *rawReplier) sender(v6 bool, h uint64, now int64) (*rawSender, error) {
	fam := &r.fams[0]
	if v6 {
		fam = &r.fams[1]
	}
	if now-fam.used.Load() > int64(time.Millisecond) { // not a store per datagram
		fam.used.Store(now)
	}
	if socks := fam.socks.Load(); socks != nil {
		return (*socks)[h%uint64(len(*socks))], nil
	}
	if now < fam.retryAt.Load() {
		return nil, errRawUnavailable
	}
	fam.mu.Lock()
	defer fam.mu.Unlock()
	if socks := fam.socks.Load(); socks != nil {
		return (*socks)[h%uint64(len(*socks))], nil
	}
	if fam.closed {
		return nil, errors.New("raw reply sockets closed")
	}
	socks := make([]*rawSender, 0, rawPerFamily())
	for range rawPerFamily() {
		s, err := r.open(v6, r.mark)
		if err != nil {
			for _, s := range socks {
				_ = s.f.Close()
			}
			fam.retryAt.Store(now + int64(rawRetry))
			return nil, err
		}
		socks = append(socks, s)
	}
	fam.socks.Store(&socks)
	return socks[h%uint64(len(socks))], nil
}

// expire closes the raw sockets of a family unused since cutoff (server
// clock), so an idle gatewayd holds no more descriptors than it started
// with; the next reply opens them again. A send that loses the race
// with it retries on the new sockets (flushRaw).
func (r *rawReplier) expire(cutoff int64) {
	for i := range r.fams {
		fam := &r.fams[i]
		if fam.socks.Load() == nil || fam.used.Load() >= cutoff {
			continue
		}
		fam.mu.Lock()
		if fam.used.Load() < cutoff {
			if socks := fam.socks.Swap(nil); socks != nil {
				for _, s := range *socks {
					_ = s.f.Close()
				}
			}
		}
		fam.mu.Unlock()
	}
}

// close closes the raw sockets; later senders fail.
func (r *rawReplier) close() {
	for i := range r.fams {
		fam := &r.fams[i]
		fam.mu.Lock()
		fam.closed = true
		if socks := fam.socks.Swap(nil); socks != nil {
			for _, s := range *socks {
				_ = s.f.Close()
			}
		}
		fam.mu.Unlock()
	}
}

// nextFragID returns a fragment identification, never 0 (an IPv4 header
// with identification 0 gets one from the kernel, per fragment).
func (r *rawReplier) nextFragID() uint32 {
	for {
		if id := r.fragID.Add(1); uint16(id) != 0 {
			return id
		}
	}
}

// openRawSender opens a non-blocking IPPROTO_RAW socket of v6's family
// carrying mark. IPPROTO_RAW implies IP_HDRINCL (IPv4) and IPV6_HDRINCL
// (IPv6), and a header-including socket may send from any source address.
func openRawSender(v6 bool, mark uint32) (*rawSender, error) {
	domain, name := unix.AF_INET, "raw4"
	if v6 {
		domain, name = unix.AF_INET6, "raw6"
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("opening %s reply socket: %w", name, err)
	}
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("setting SO_MARK on the %s reply socket: %w", name, err)
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, rawSendBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, rawSendBuffer)
	}
	f := os.NewFile(uintptr(fd), name+" reply")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s reply socket: %w", name, err)
	}
	return &rawSender{f: f, rc: rc, inet6: v6}, nil
}

// routeMTU is the MTU of the route to client for packets carrying mark,
// as the kernel reports it for a UDP socket connected there (IP_MTU,
// IPV6_MTU): the device MTU, or a smaller one the route or a learned path
// MTU sets.
func routeMTU(client netip.AddrPort, mark uint32) (int, error) {
	domain, level, opt := unix.AF_INET, unix.SOL_IP, unix.IP_MTU
	var sa unix.Sockaddr
	if a := client.Addr(); a.Is4() {
		sa = &unix.SockaddrInet4{Port: int(client.Port()), Addr: a.As4()}
	} else {
		domain, level, opt = unix.AF_INET6, unix.SOL_IPV6, unix.IPV6_MTU
		sa = &unix.SockaddrInet6{Port: int(client.Port()), Addr: a.As16(), ZoneId: udpio.ZoneIndex(a.Zone())}
	}
	fd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	if mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			return 0, err
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		return 0, err
	}
	return unix.GetsockoptInt(fd, level, opt)
}

// replyMTU is the packet size replies of length n to the session's
// client must keep to: the family's minimum MTU while they fit it, else
// the route's (looked up once per session; the minimum if that fails).
func (s *Server) replyMTU(ss *session, n int) int {
	least, hdr := minMTU4, ipv4HdrLen+udpHdrLen
	if ss.client.Addr().Is6() {
		least, hdr = minMTU6, ipv6HdrLen+udpHdrLen
	}
	if hdr+n <= least {
		return least
	}
	if m := ss.mtu.Load(); m != 0 {
		return int(m)
	}
	m, err := routeMTU(ss.client, s.cfg.BypassMark)
	if err != nil || m < least {
		m = least
	}
	ss.mtu.Store(int32(m))
	return m
}

// rawMsgMeta says which datagram a packet of a rawBatch belongs to.
type rawMsgMeta struct {
	dg   uint32 // datagram number in the batch's life
	plen int32  // the datagram's payload length on its last packet; -1 on the others
}

// rawBatch collects reply packets for one raw socket and sends them with
// sendmmsg(2), each packet as two iovecs (headers, payload slice): the
// payload is not copied.
type rawBatch struct {
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec // two per message
	hdrs  []byte       // rawHdrRoom per message
	names []udpio.Sockaddr
	meta  []rawMsgMeta
	n     int // packets queued
	next  int // first packet not sent yet
	snd   *rawSender
	dg    uint32 // number of the datagram being added
	badDg uint32 // 1 + number of the last datagram a packet of which failed

	// Results since the last take.
	sentN, sentBytes, dropped int
	tooBig                    bool // a packet was refused with EMSGSIZE: the MTU shrank

	// One sendmmsg call (the RawConn.Write callback).
	from, to, res int
	errno         unix.Errno
	writeFn       func(fd uintptr) bool
	hdrFn         func(i int) []byte
	emitFn        func(rawFragment)
	emitDst       netip.AddrPort
	emitFrags     int
}

func newRawBatch() *rawBatch {
	b := &rawBatch{
		msgs:  make([]unix.Mmsghdr, rawBatchMsgs),
		iovs:  make([]unix.Iovec, 2*rawBatchMsgs),
		hdrs:  make([]byte, rawHdrRoom*rawBatchMsgs),
		names: make([]udpio.Sockaddr, rawBatchMsgs),
		meta:  make([]rawMsgMeta, rawBatchMsgs),
	}
	for i := range b.msgs {
		h := &b.msgs[i].Hdr
		h.Name = &b.names[i][0]
		h.Iov = &b.iovs[2*i]
	}
	b.writeFn = b.send
	b.hdrFn = b.hdr
	b.emitFn = b.emit
	return b
}

// hdr is the header buffer of the i-th packet of the datagram being
// added: the next free message's, once the batch has room (flushing it
// when full). Flushing cannot fail here but by a closed socket, whose
// error the next flush reports again.
func (b *rawBatch) hdr(int) []byte {
	if b.n == len(b.msgs) {
		if b.flush() != nil {
			b.abandon()
		}
	}
	return b.hdrs[b.n*rawHdrRoom : (b.n+1)*rawHdrRoom]
}

// emit queues one packet whose headers are in the next message's buffer.
func (b *rawBatch) emit(f rawFragment) {
	m := b.n
	iov := b.iovs[2*m : 2*m+2]
	iov[0].Base = &f.hdr[0]
	iov[0].SetLen(len(f.hdr))
	h := &b.msgs[m].Hdr
	if len(f.data) > 0 {
		iov[1].Base = &f.data[0]
		iov[1].SetLen(len(f.data))
		h.SetIovlen(2)
	} else {
		iov[1].Base = nil
		iov[1].SetLen(0)
		h.SetIovlen(1)
	}
	// The destination is the client's address (port 0: a raw socket's
	// "port" is its protocol).
	namelen, _ := udpio.EncodeSockaddr(&b.names[m], b.emitDst, b.snd.inet6)
	h.Namelen = namelen
	b.meta[m] = rawMsgMeta{dg: b.dg, plen: -1}
	b.n++
	b.emitFrags++
}

// add queues the datagram p from remote to client, in packets of at most
// mtu bytes. It reports false if the datagram cannot be built (counted
// by the caller); packets may already have been sent when the batch
// filled up.
func (b *rawBatch) add(snd *rawSender, remote, client netip.AddrPort, p []byte, mtu int, id uint32) bool {
	if b.snd != snd && b.n > 0 && b.flush() != nil {
		b.abandon()
	}
	b.snd = snd
	b.dg++
	b.emitDst = netip.AddrPortFrom(client.Addr(), 0)
	b.emitFrags = 0
	if !replyPackets(remote, client, p, mtu, id, b.hdrFn, b.emitFn) {
		return false
	}
	b.meta[b.n-1].plen = int32(len(p))
	return true
}

// flush sends the queued packets, waiting in Go's poller while the
// socket buffer is full. A packet the kernel refuses makes its datagram
// count as dropped. It returns an error only if the socket is closed or
// unusable: the packets not sent stay queued (from b.next) for another
// socket, or for abandon.
func (b *rawBatch) flush() error {
	for b.next < b.n {
		m := b.next
		b.from, b.to, b.res, b.errno = m, b.n, 0, 0
		if err := b.snd.rc.Write(b.writeFn); err != nil {
			return err
		}
		if b.errno == 0 && b.res > 0 {
			for range b.res {
				b.done(b.next, true)
				b.next++
			}
			continue
		}
		b.done(m, false) // refused (EMSGSIZE, EPERM from a firewall, ...)
		b.tooBig = b.tooBig || b.errno == unix.EMSGSIZE
		b.next++
	}
	b.n, b.next = 0, 0
	return nil
}

// abandon drops the packets a failed flush left.
func (b *rawBatch) abandon() {
	for ; b.next < b.n; b.next++ {
		b.done(b.next, false)
	}
	b.n, b.next = 0, 0
}

// done accounts message m as sent or not.
func (b *rawBatch) done(m int, ok bool) {
	meta := b.meta[m]
	if !ok {
		// A datagram is counted once, at its last packet.
		if meta.plen >= 0 {
			b.dropped++
		} else {
			b.badDg = meta.dg + 1
		}
		return
	}
	if meta.plen < 0 {
		return
	}
	if b.badDg == meta.dg+1 {
		b.dropped++ // an earlier fragment was refused
		return
	}
	b.sentN++
	b.sentBytes += int(meta.plen)
}

// take returns and resets the results.
func (b *rawBatch) take() (sent, bytes, dropped int, tooBig bool) {
	sent, bytes, dropped, tooBig = b.sentN, b.sentBytes, b.dropped, b.tooBig
	b.sentN, b.sentBytes, b.dropped, b.tooBig = 0, 0, 0, false
	return sent, bytes, dropped, tooBig
}

// send is the RawConn.Write callback: one non-blocking sendmmsg.
func (b *rawBatch) send(fd uintptr) bool {
	return udpio.Sendmmsg(fd, b.msgs[b.from:b.to], &b.res, &b.errno)
}
