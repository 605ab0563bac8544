// Package udpio is the datagram socket machinery the UDP relay (package
// udp) and the DNS hijack's listener (package dns) share: batched receive
// and send with recvmmsg(2) and sendmmsg(2) on the descriptors of
// *net.UDPConn, UDP GSO for runs of equal-size datagrams, and decoding of
// the original destination TPROXY attaches to a datagram as a control
// message.
//
// A Sock is a socket's descriptor side; a RecvBatch receives into buffers
// it owns; a SendBatch sends datagrams (slices the caller keeps untouched
// until Flush) from one Sock. Nothing here allocates per datagram or per
// batch once the batches exist.
package udpio

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched datagram I/O: recvmmsg(2) and sendmmsg(2) on the descriptors of
// *net.UDPConn, through syscall.RawConn so Go's poller still does the
// waiting, and UDP GSO (UDP_SEGMENT) to send a run of equal-size datagrams
// to one destination as one message. Every buffer, header and callback is
// allocated with its batch; reading and sending a batch allocates nothing.
//
// x/net's ipv4/ipv6 ReadBatch would do the receiving too, but it returns each
// source as a net.Addr (an allocation per datagram), and it knows no GSO.
//
// The calls are raw system calls (no entersyscall/exitsyscall): with
// MSG_DONTWAIT on non-blocking sockets they never sleep, and a send runs
// the receiving side's softirq work inline, often for longer than the 20 µs
// after which the runtime's sysmon thread takes the P of a goroutine in a
// system call and hands it to another thread. Measured in the bench lab,
// sysmon's wakeups and the handoffs were about a quarter of the relay's
// profile; raw calls removed them.

// MaxDatagram is the room of each datagram of a RecvBatch: the largest IP
// datagram. TPROXY (like any local delivery) reassembles fragments, so
// datagrams arrive whole and a smaller buffer would truncate them.
const MaxDatagram = 65535

// UDP GSO limits: UDP_MAX_SEGMENTS is 64 on older kernels (newer ones take
// 128), and one send carries at most one IP datagram's worth of payload
// (64 KiB less the IPv4 and UDP headers, rounded down).
const (
	maxGSOSegments = 64
	maxGSOBytes    = 65000
)

// gsoCmsgSpace is the room of one UDP_SEGMENT control message (a uint16).
var gsoCmsgSpace = unix.CmsgSpace(2)

// Sockaddr holds a struct sockaddr_in or sockaddr_in6.
type Sockaddr [unix.SizeofSockaddrInet6]byte

// Sock is the descriptor side of one *net.UDPConn, for batched I/O. It
// remembers how long a run of datagrams the socket's route takes as one
// UDP GSO message, for every SendBatch that sends on it; it is safe for
// concurrent use.
type Sock struct {
	rc    syscall.RawConn
	inet6 bool // AF_INET6 (so IPv4 destinations go as mapped addresses)
	// gsoMax is the longest datagram sends may coalesce with UDP_SEGMENT;
	// 0: none. It drops below a segment size the route refused, and to 0
	// when the route cannot do GSO at all.
	gsoMax atomic.Int32
}

// NewSock returns c's descriptor for batched I/O, or nil if c does not
// expose it (batched paths then fall back to one datagram per call).
func NewSock(c *net.UDPConn) *Sock {
	if c == nil {
		return nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	var domain int
	var derr, gerr error
	if err := rc.Control(func(fd uintptr) {
		domain, derr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		// UDP_SEGMENT is readable since Linux 4.18, which brought UDP
		// GSO. An older kernel would ignore the control message and send
		// a coalesced run as one datagram, so never try it there.
		_, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil || derr != nil {
		return nil
	}
	r := &Sock{rc: rc, inet6: domain == unix.AF_INET6}
	if gerr == nil {
		r.gsoMax.Store(MaxDatagram)
	}
	return r
}

// RawConn is the socket's syscall.RawConn, for RecvBatch.Read.
func (r *Sock) RawConn() syscall.RawConn { return r.rc }

// decodeSockaddr reads a struct sockaddr_in or sockaddr_in6 of length n,
// unmapped. A link-local IPv6 address keeps its scope as a numeric zone.
func decodeSockaddr(b *Sockaddr, n uint32) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16(b[saPortOff:])
	switch binary.NativeEndian.Uint16(b[saFamilyOff:]) {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[sin4AddrOff:sin4AddrOff+4])), port), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		a := netip.AddrFrom16([16]byte(b[sin6AddrOff : sin6AddrOff+16])).Unmap()
		if scope := binary.NativeEndian.Uint32(b[sin6ScopeOff:]); scope != 0 && a.Is6() {
			a = a.WithZone(strconv.FormatUint(uint64(scope), 10))
		}
		return netip.AddrPortFrom(a, port), true
	}
	return netip.AddrPort{}, false
}

// sin6ScopeOff is the scope id's offset in struct sockaddr_in6.
const sin6ScopeOff = 24

// EncodeSockaddr writes ap as the destination of a socket of the given
// family (inet6: AF_INET6, which reaches IPv4 addresses as mapped ones) and
// returns its length, or false if the family cannot reach ap.
func EncodeSockaddr(b *Sockaddr, ap netip.AddrPort, inet6 bool) (uint32, bool) {
	a := ap.Addr()
	if !inet6 {
		if !a.Unmap().Is4() {
			return 0, false
		}
		clear(b[:unix.SizeofSockaddrInet4])
		binary.NativeEndian.PutUint16(b[saFamilyOff:], unix.AF_INET)
		binary.BigEndian.PutUint16(b[saPortOff:], ap.Port())
		a4 := a.Unmap().As4()
		copy(b[sin4AddrOff:], a4[:])
		return unix.SizeofSockaddrInet4, true
	}
	clear(b[:])
	binary.NativeEndian.PutUint16(b[saFamilyOff:], unix.AF_INET6)
	binary.BigEndian.PutUint16(b[saPortOff:], ap.Port())
	a16 := a.As16()
	copy(b[sin6AddrOff:], a16[:])
	if z := a.Zone(); z != "" {
		binary.NativeEndian.PutUint32(b[sin6ScopeOff:], ZoneIndex(z))
	}
	return unix.SizeofSockaddrInet6, true
}

// ZoneIndex is the interface index of an IPv6 zone: numeric (as
// RecvBatch.Source makes them) or an interface name; 0 if there is none.
func ZoneIndex(z string) uint32 {
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(z); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// RecvBatch is the state of recvmmsg(2) calls into n slots, each with its
// own MaxDatagram buffer, source address and control buffer.
type RecvBatch struct {
	msgs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []Sockaddr
	oob    []byte
	oobLen int
	bufs   []byte

	n      int        // datagrams the last read returned
	used   int        // headers the kernel wrote to since they were reset
	waited bool       // the last read found nothing queued at first
	errno  unix.Errno // error of the last recvmmsg
	readFn func(fd uintptr) bool
}

// NewRecvBatch allocates a batch of n datagrams with oobLen bytes of
// control data each (OOBSize for original destinations; 0: none). The
// buffers are allocated untouched: a slot's pages are only backed once a
// datagram that long arrives in it.
func NewRecvBatch(n, oobLen int) *RecvBatch {
	b := &RecvBatch{
		msgs:   make([]unix.Mmsghdr, n),
		iovs:   make([]unix.Iovec, n),
		names:  make([]Sockaddr, n),
		oob:    make([]byte, n*max(oobLen, 1)),
		oobLen: oobLen,
		bufs:   make([]byte, n*MaxDatagram),
	}
	for i := range b.msgs {
		b.iovs[i].Base = &b.bufs[i*MaxDatagram]
		b.iovs[i].SetLen(MaxDatagram)
		h := &b.msgs[i].Hdr
		h.Name = &b.names[i][0]
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		if oobLen > 0 {
			h.Control = &b.oob[i*oobLen]
		}
	}
	b.used = n
	b.readFn = b.recv
	return b
}

// Read receives up to n datagrams from the socket of rc, waiting for the
// first one in Go's poller (so deadlines and Close work as for ReadFrom).
// The datagrams of the previous Read are gone.
func (b *RecvBatch) Read(rc syscall.RawConn) error {
	b.n, b.waited, b.errno = 0, false, 0
	if err := rc.Read(b.readFn); err != nil {
		return err
	}
	if b.errno != 0 {
		return b.errno
	}
	return nil
}

// recv is the RawConn.Read callback: one non-blocking recvmmsg. It does not
// go on reading until the batch is full: in the bench lab that made the
// bursts towards the receivers longer and cost more loss at moderate rates
// than the fewer sends saved.
func (b *RecvBatch) recv(fd uintptr) bool {
	for i := range b.used {
		h := &b.msgs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(b.oobLen)
		h.Flags = 0
		b.msgs[i].Len = 0
	}
	b.used = 0
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), uintptr(len(b.msgs)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			b.n, b.used = int(n), int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			b.waited = true
			return false
		}
		b.errno = e
		b.used = len(b.msgs) // the kernel may have written to the first
		return true
	}
}

// Len is the number of datagrams the last Read returned.
func (b *RecvBatch) Len() int { return b.n }

// Waited reports whether the last Read found nothing queued at first and
// waited for the socket to become readable.
func (b *RecvBatch) Waited() bool { return b.waited }

// Datagram is the payload of datagram i of the last Read; valid until the
// next Read.
func (b *RecvBatch) Datagram(i int) []byte {
	off := i * MaxDatagram
	return b.bufs[off : off+int(b.msgs[i].Len)]
}

// Control is the control data of datagram i (see OrigDst).
func (b *RecvBatch) Control(i int) []byte {
	off := i * b.oobLen
	return b.oob[off : off+int(b.msgs[i].Hdr.Controllen)]
}

// Flags are the recvmsg flags of datagram i (MSG_TRUNC, MSG_CTRUNC).
func (b *RecvBatch) Flags(i int) int { return int(b.msgs[i].Hdr.Flags) }

// Source is the unmapped sender of datagram i; false if its address cannot
// be decoded. A link-local IPv6 sender keeps its scope as a numeric zone.
func (b *RecvBatch) Source(i int) (netip.AddrPort, bool) {
	return decodeSockaddr(&b.names[i], b.msgs[i].Hdr.Namelen)
}

// Buffer is the whole MaxDatagram buffer of slot i, for reading one
// datagram into the batch's memory without Read (its length then is the
// caller's to keep). The next Read overwrites it.
func (b *RecvBatch) Buffer(i int) []byte {
	off := i * MaxDatagram
	return b.bufs[off : off+MaxDatagram : off+MaxDatagram]
}

// Put lays datagram i out as recvmmsg(2) would have: payload p, source
// src, control data oob, no flags; the batch then holds i+1 datagrams. It
// is for tests and benchmarks of what consumes batches, and reports false
// if i, p or oob do not fit.
func (b *RecvBatch) Put(i int, p []byte, src netip.AddrPort, oob []byte) bool {
	if i >= len(b.msgs) || len(p) > MaxDatagram || len(oob) > b.oobLen {
		return false
	}
	n, _ := EncodeSockaddr(&b.names[i], src, !src.Addr().Is4()) // AF_INET6 takes any address
	copy(b.bufs[i*MaxDatagram:], p)
	b.msgs[i].Len = uint32(len(p))
	h := &b.msgs[i].Hdr
	h.Namelen, h.Flags = n, 0
	copy(b.oob[i*b.oobLen:], oob)
	h.SetControllen(len(oob))
	b.n, b.used = i+1, max(b.used, i+1)
	return true
}

// Queued is a datagram added to a SendBatch.
type Queued struct {
	Payload []byte
	Dst     netip.AddrPort
}

// SendBatch collects datagrams for one socket and sends them with as few
// sendmmsg(2) calls as the socket's buffer allows. Consecutive datagrams to
// the same destination, all as long as the first but the last, go as one
// message with a UDP_SEGMENT control message when the socket allows GSO:
// the kernel then passes them through its stack once and splits them into
// datagrams on the way out (or the receiver does).
type SendBatch struct {
	msgs     []unix.Mmsghdr
	iovs     []unix.Iovec // one per item
	names    []Sockaddr
	cmsgs    []byte
	items    []Queued
	msgDst   []netip.AddrPort
	msgFirst []int // index of each message's first item

	rs     *Sock
	gsoMax int // rs.gsoMax when the batch began
	nmsg   int
	seg    int  // segment size of the last message
	bytes  int  // payload of the last message
	open   bool // the last message can take another segment

	// Results of flush.
	sentN, sentBytes, dropped int
	next                      int // first item not handled when flush failed

	// Arguments and results of one sendmmsg call (the RawConn.Write
	// callback).
	from, to int
	res      int
	errno    unix.Errno
	writeFn  func(fd uintptr) bool
}

// NewSendBatch returns a batch of up to n datagrams.
func NewSendBatch(n int) *SendBatch {
	b := &SendBatch{
		msgs:     make([]unix.Mmsghdr, n),
		iovs:     make([]unix.Iovec, n),
		names:    make([]Sockaddr, n),
		cmsgs:    make([]byte, n*gsoCmsgSpace),
		items:    make([]Queued, 0, n),
		msgDst:   make([]netip.AddrPort, n),
		msgFirst: make([]int, n),
	}
	for i := range b.msgs {
		b.msgs[i].Hdr.Name = &b.names[i][0]
		c := (*unix.Cmsghdr)(unsafe.Pointer(&b.cmsgs[i*gsoCmsgSpace]))
		c.Level, c.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
		c.SetLen(unix.CmsgLen(2))
	}
	b.writeFn = b.send
	return b
}

// Begin empties the batch for datagrams to be sent on rs (nil: none yet;
// it also lets go of the datagrams added before).
func (b *SendBatch) Begin(rs *Sock) {
	b.rs, b.gsoMax = rs, 0
	if rs != nil {
		b.gsoMax = int(rs.gsoMax.Load())
	}
	b.nmsg, b.open = 0, false
	clear(b.items) // drop references into receive buffers
	b.items = b.items[:0]
}

// Sock is the socket of the last Begin.
func (b *SendBatch) Sock() *Sock { return b.rs }

// Empty reports whether nothing was added since Begin.
func (b *SendBatch) Empty() bool { return len(b.items) == 0 }

// Add queues p for dst; p must stay untouched until Flush. It reports
// false, queueing nothing, if the socket's family cannot reach dst. The
// batch holds as many datagrams as it was made for.
func (b *SendBatch) Add(p []byte, dst netip.AddrPort) bool {
	i := len(b.items)
	iov := &b.iovs[i]
	iov.Base = nil
	if len(p) > 0 {
		iov.Base = &p[0]
	}
	iov.SetLen(len(p))
	if b.open && len(p) > 0 && len(p) <= b.seg && dst == b.msgDst[b.nmsg-1] &&
		b.bytes+len(p) <= maxGSOBytes && b.msgs[b.nmsg-1].Hdr.Iovlen < maxGSOSegments {
		h := &b.msgs[b.nmsg-1].Hdr
		if h.Iovlen == 1 {
			h.Control = &b.cmsgs[(b.nmsg-1)*gsoCmsgSpace]
			h.SetControllen(gsoCmsgSpace)
			binary.NativeEndian.PutUint16(b.cmsgs[(b.nmsg-1)*gsoCmsgSpace+unix.CmsgLen(0):], uint16(b.seg))
		}
		h.Iovlen++
		b.bytes += len(p)
		b.open = len(p) == b.seg // a shorter segment ends the run
		b.items = append(b.items, Queued{p, dst})
		return true
	}
	m := b.nmsg
	namelen, ok := EncodeSockaddr(&b.names[m], dst, b.rs.inet6)
	if !ok {
		return false
	}
	h := &b.msgs[m].Hdr
	h.Namelen = namelen
	h.Iov = iov
	h.SetIovlen(1)
	h.Control = nil
	h.SetControllen(0)
	b.msgDst[m], b.msgFirst[m] = dst, i
	b.nmsg++
	b.seg, b.bytes = len(p), len(p)
	b.open = len(p) > 0 && len(p) <= b.gsoMax
	b.items = append(b.items, Queued{p, dst})
	return true
}

// segSize is the UDP_SEGMENT size of message m: its first datagram's.
func (b *SendBatch) segSize(m int) int { return len(b.items[b.msgFirst[m]].Payload) }

// segments is the number of datagrams in message m.
func (b *SendBatch) segments(m int) int { return int(b.msgs[m].Hdr.Iovlen) }

// Sent is what the last Flush sent: datagrams and their payload bytes.
func (b *SendBatch) Sent() (datagrams, bytes int) { return b.sentN, b.sentBytes }

// Dropped is the number of datagrams the kernel refused in the last Flush.
func (b *SendBatch) Dropped() int { return b.dropped }

// Unsent are the datagrams the last Flush did not get to because the
// socket was closed or unusable (it returned an error); empty after a
// Flush without error. Valid until the next Begin.
func (b *SendBatch) Unsent() []Queued { return b.items[b.next:] }

// Flush sends every queued datagram, waiting in Go's poller while the
// socket buffer is full. Datagrams the kernel refuses are counted in
// Dropped; a run whose GSO send fails is sent again one datagram at a
// time, and runs that long are not coalesced on the socket from then on.
// It returns an error only if the socket is closed or unusable: Unsent
// were then not sent.
func (b *SendBatch) Flush() error {
	b.sentN, b.sentBytes, b.dropped, b.next = 0, 0, 0, 0
	for m := 0; m < b.nmsg; {
		if err := b.call(m, b.nmsg); err != nil {
			b.next = b.msgFirst[m]
			return err
		}
		if b.errno == 0 && b.res > 0 {
			for range b.res {
				b.count(m)
				m++
			}
			continue
		}
		// Message m failed.
		if b.segments(m) > 1 && isGSOError(b.errno) {
			b.rs.refuseGSO(b.errno, b.segSize(m))
			if err := b.sendApart(m); err != nil {
				return err
			}
		} else {
			b.dropped += b.segments(m)
		}
		m++
	}
	b.next = len(b.items)
	return nil
}

// count records message m as sent.
func (b *SendBatch) count(m int) {
	first := b.msgFirst[m]
	for _, it := range b.items[first : first+b.segments(m)] {
		b.sentN++
		b.sentBytes += len(it.Payload)
	}
}

// sendApart sends the segments of message m one datagram per call.
func (b *SendBatch) sendApart(m int) error {
	h := &b.msgs[m].Hdr
	first, n := b.msgFirst[m], b.segments(m)
	h.Control = nil
	h.SetControllen(0)
	h.SetIovlen(1)
	for i := first; i < first+n; i++ {
		h.Iov = &b.iovs[i]
		if err := b.call(m, m+1); err != nil {
			b.next = i
			return err
		}
		if b.errno == 0 {
			b.sentN++
			b.sentBytes += len(b.items[i].Payload)
		} else {
			b.dropped++
		}
	}
	return nil
}

// call runs one sendmmsg on messages [from, to) and leaves its result in
// b.res and b.errno.
func (b *SendBatch) call(from, to int) error {
	b.from, b.to, b.res, b.errno = from, to, 0, 0
	return b.rs.rc.Write(b.writeFn)
}

// send is the RawConn.Write callback.
func (b *SendBatch) send(fd uintptr) bool {
	return Sendmmsg(fd, b.msgs[b.from:b.to], &b.res, &b.errno)
}

// Sendmmsg is one non-blocking sendmmsg(2) of msgs on fd, as a
// RawConn.Write callback step: false when the socket is full (wait), true
// with *sent set, or *errno on an error. A raw system call: see the top of
// this file.
func Sendmmsg(fd uintptr, msgs []unix.Mmsghdr, sent *int, errno *unix.Errno) bool {
	if len(msgs) == 0 {
		*sent = 0
		return true
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			*sent = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		*errno = e
		return true
	}
}

// isGSOError reports errors of a UDP_SEGMENT send that one datagram at a
// time may not have: no checksum offload or IPsec on the route (EIO), a
// segment longer than the path MTU allows (EINVAL), more than the kernel
// takes (EMSGSIZE).
func isGSOError(e unix.Errno) bool {
	return e == unix.EIO || e == unix.EINVAL || e == unix.EMSGSIZE || e == unix.EOPNOTSUPP
}

// refuseGSO records a failed UDP_SEGMENT send of seg-byte segments: the
// route takes none (EIO, EOPNOTSUPP), or none this long.
func (r *Sock) refuseGSO(e unix.Errno, seg int) {
	limit := int32(0)
	if e == unix.EINVAL || e == unix.EMSGSIZE {
		limit = int32(seg - 1)
	}
	for {
		cur := r.gsoMax.Load()
		if cur <= limit || r.gsoMax.CompareAndSwap(cur, limit) {
			return
		}
	}
}
