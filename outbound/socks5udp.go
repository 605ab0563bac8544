package outbound

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrAssociationEnded is what reads on a SOCKS5 UDP association return
// (wrapped) after the proxy closed its control connection: RFC 1928 ends
// the association with it.
var ErrAssociationEnded = errors.New("socks5 UDP association ended by the proxy")

// ctrlReadBuf is the buffer the watcher discards control-connection bytes
// into: a proxy sends nothing there after the reply.
const ctrlReadBuf = 64

// socksUDP is one UDP association: datagrams go to and come from the
// relay through a UDP socket connected to it (so the kernel drops
// datagrams from anyone else), wrapped in the SOCKS5 UDP header. A
// goroutine watches the control connection and ends the association when
// the proxy closes it.
type socksUDP struct {
	out   *socks5
	ctrl  *net.TCPConn
	pc    *net.UDPConn
	relay netip.AddrPort

	endOnce sync.Once
	mu      sync.Mutex
	cause   error         // why the proxy ended the association; nil after Close
	done    chan struct{} // closed when the watcher has returned
}

var _ syscall.Conn = (*socksUDP)(nil)

func newSOCKSUDP(out *socks5, ctrl *net.TCPConn, pc *net.UDPConn, relay netip.AddrPort) *socksUDP {
	u := &socksUDP{out: out, ctrl: ctrl, pc: pc, relay: relay, done: make(chan struct{})}
	out.stats.udpActive.Add(1)
	go u.watch()
	return u
}

// watch reads the control connection until it fails, then ends the
// association.
func (u *socksUDP) watch() {
	defer close(u.done)
	var buf [ctrlReadBuf]byte
	for {
		_, err := u.ctrl.Read(buf[:])
		if err == nil {
			continue
		}
		switch {
		case errors.Is(err, net.ErrClosed): // Close
			u.end(nil)
		case errors.Is(err, io.EOF):
			u.end(fmt.Errorf("%w: %s closed the control connection", ErrAssociationEnded, u.out.desc))
		default:
			u.end(fmt.Errorf("%w: control connection to %s: %w", ErrAssociationEnded, u.out.desc, err))
		}
		return
	}
}

// end closes both sockets once, recording cause for the reads that fail.
func (u *socksUDP) end(cause error) {
	u.endOnce.Do(func() {
		u.mu.Lock()
		u.cause = cause
		u.mu.Unlock()
		_ = u.ctrl.Close()
		_ = u.pc.Close()
		u.out.stats.udpActive.Add(-1)
	})
}

// ioErr explains an I/O error on the UDP socket: the proxy's ending of
// the association if that is what closed it.
func (u *socksUDP) ioErr(what string, err error) error {
	u.mu.Lock()
	cause := u.cause
	u.mu.Unlock()
	if cause != nil {
		err = cause
	}
	return fmt.Errorf("%s socks5 UDP relay %s: %w", what, u.relay, err)
}

// WriteToUDPAddrPort sends b to dst through the relay.
func (u *socksUDP) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	if !dst.IsValid() {
		return 0, fmt.Errorf("sending through socks5 UDP relay %s: invalid destination %s", u.relay, dst)
	}
	p := u.out.getSendBuf(maxUDPHeader + len(b))
	defer u.out.putSendBuf(p)
	*p = append(appendUDPHeader((*p)[:0], dst), b...)
	if _, err := u.pc.Write(*p); err != nil {
		return 0, u.ioErr(fmt.Sprintf("sending %d bytes for %s to", len(b), dst), err)
	}
	return len(b), nil
}

// ReadFromUDPAddrPort receives the next datagram the relay forwards and
// the remote it came from. Fragments (FRAG != 0) and malformed headers
// are dropped and counted. The payload is read into b with its header and
// moved to the front, so b must have room for both (64 KiB always does).
func (u *socksUDP) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, err := u.pc.Read(b)
		if err != nil {
			return 0, netip.AddrPort{}, u.ioErr("reading from", err)
		}
		frag, src, hl, err := parseUDPHeader(b[:n])
		if err != nil {
			u.out.stats.dropMalformed.Add(1)
			continue
		}
		if frag != 0 {
			u.out.stats.dropFragment.Add(1)
			continue
		}
		from, ok := src.addrPort()
		if !ok {
			u.out.stats.dropMalformed.Add(1)
			continue
		}
		return copy(b, b[hl:n]), from, nil
	}
}

// SetReadDeadline bounds ReadFromUDPAddrPort.
func (u *socksUDP) SetReadDeadline(t time.Time) error { return u.pc.SetReadDeadline(t) }

// SyscallConn exposes the UDP socket, so a session can wait for a
// datagram without holding a buffer.
func (u *socksUDP) SyscallConn() (syscall.RawConn, error) { return u.pc.SyscallConn() }

// Close ends the association: it closes the control connection (which
// tells the proxy) and the UDP socket, and waits for the watcher.
func (u *socksUDP) Close() error {
	u.end(nil)
	<-u.done
	return nil
}
