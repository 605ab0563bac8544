package udp

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// This file exports the datagram machinery the DNS hijack's listener
// shares with the UDP relay: original-destination decoding and batched
// receive and send.

// OrigDst decodes the original destination from the control messages of a
// datagram read from a socket with IP_RECVORIGDSTADDR/IPV6_RECVORIGDSTADDR.
func OrigDst(oob []byte) (netip.AddrPort, error) { return origDst(oob) }

// OOBSize is the control buffer size OrigDst needs (both families).
func OOBSize() int { return oobSize }

// BatchReader receives up to n datagrams per recvmmsg(2) from a TPROXY
// listener, with their sources and original destinations.
type BatchReader struct {
	rc syscall.RawConn
	b  *recvBatch
}

// NewBatchReader returns a reader of c in batches of n datagrams.
func NewBatchReader(c *net.UDPConn, n int) (*BatchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("batch reader for %s: %w", c.LocalAddr(), err)
	}
	return &BatchReader{rc: rc, b: newRecvBatch(n, oobSize)}, nil
}

// Read waits for datagrams and returns how many the batch holds now.
// Closing the socket ends it with an error.
func (r *BatchReader) Read() (int, error) {
	if err := r.b.read(r.rc); err != nil {
		return 0, err
	}
	return r.b.n, nil
}

// Datagram is the payload of datagram i of the last Read; valid until the
// next Read.
func (r *BatchReader) Datagram(i int) []byte { return r.b.datagram(i) }

// Addrs are datagram i's unmapped source and original destination; false
// if it was truncated or its addresses cannot be decoded (drop it).
func (r *BatchReader) Addrs(i int) (src, dst netip.AddrPort, ok bool) {
	if r.b.flags(i)&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return src, dst, false
	}
	if src, ok = r.b.source(i); !ok {
		return src, dst, false
	}
	dst, err := origDst(r.b.control(i))
	return src, dst, err == nil
}

// Sender is a socket's descriptor side for SendBatch.
type Sender struct{ rs *rawSock }

// NewSender returns c's Sender, or nil if c exposes no descriptor.
func NewSender(c *net.UDPConn) *Sender {
	rs := newRawSock(c)
	if rs == nil {
		return nil
	}
	return &Sender{rs: rs}
}

// SendBatch sends up to n datagrams from one socket with sendmmsg(2);
// equal-size datagrams in a row to one destination go as one UDP GSO
// message where the kernel allows.
type SendBatch struct{ b *sendBatch }

// NewSendBatch returns a batch of up to n datagrams.
func NewSendBatch(n int) *SendBatch { return &SendBatch{b: newSendBatch(n)} }

// Begin empties the batch for datagrams sent from s.
func (b *SendBatch) Begin(s *Sender) { b.b.begin(s.rs) }

// Add queues p (which must stay untouched until Flush) for dst; false if
// the socket's family cannot reach dst.
func (b *SendBatch) Add(p []byte, dst netip.AddrPort) bool { return b.b.add(p, dst) }

// Flush sends what was added. dropped counts datagrams not sent: refused
// by the kernel, or left when err says the socket is closed or unusable.
func (b *SendBatch) Flush() (dropped int, err error) {
	err = b.b.flush()
	return b.b.dropped + len(b.b.items) - b.b.next, err
}
