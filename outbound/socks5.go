package outbound

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// socks5 relays through a SOCKS5 proxy: TCP with CONNECT, UDP with UDP
// ASSOCIATE.
type socks5 struct {
	proxy
	user, pass string
	sendBufs   sync.Pool // *[]byte: header+payload of outgoing datagrams
}

func newSOCKS5(cfg Config) *socks5 {
	return &socks5{proxy: newProxy(cfg, "socks5"), user: cfg.Username, pass: cfg.Password}
}

// DialTCP implements Outbound.
func (s *socks5) DialTCP(ctx context.Context, dst Dest) (*net.TCPConn, error) {
	s.stats.begin()
	c, err := s.connect(ctx, dst, func(c *net.TCPConn) error {
		_, err := s.request(c, cmdConnect, targetOf(dst, s.preferNames))
		return err
	})
	return c, s.stats.end(err)
}

// cmdName names a request command in errors.
func cmdName(cmd byte) string {
	if cmd == cmdUDPAssociate {
		return "UDP ASSOCIATE"
	}
	return "CONNECT"
}

// request negotiates authentication on a fresh connection, sends one
// request and reads its reply, exactly.
func (s *socks5) request(rw io.ReadWriter, cmd byte, dst socksAddr) (socksAddr, error) {
	if err := s.negotiate(rw); err != nil {
		return socksAddr{}, err
	}
	if _, err := rw.Write(appendRequest(nil, cmd, dst)); err != nil {
		return socksAddr{}, kinded(ErrHandshake, "%s: sending %s %s: %w", s.desc, cmdName(cmd), dst, err)
	}
	r, err := readReply(rw)
	if err != nil {
		return socksAddr{}, fmt.Errorf("%s: reading the reply to %s %s: %w", s.desc, cmdName(cmd), dst, err)
	}
	if r.rep != repSucceeded {
		text, kind := repFailure(r.rep)
		return socksAddr{}, kinded(kind, "%s refused %s to %s: %s (rep %d)", s.desc, cmdName(cmd), dst, text, r.rep)
	}
	return r.bnd, nil
}

// negotiate runs the method selection and, if the server picks it,
// username/password authentication.
func (s *socks5) negotiate(rw io.ReadWriter) error {
	greeting, offered := []byte{socksVersion, 1, methodNoAuth}, "no authentication"
	if s.user != "" {
		greeting, offered = []byte{socksVersion, 2, methodNoAuth, methodUserPass}, "no authentication, username/password"
	}
	if _, err := rw.Write(greeting); err != nil {
		return kinded(ErrHandshake, "%s: sending greeting: %w", s.desc, err)
	}
	var resp [2]byte
	if _, err := io.ReadFull(rw, resp[:]); err != nil {
		return kinded(ErrHandshake, "%s: reading method selection: %w", s.desc, eofIsUnexpected(err))
	}
	if resp[0] != socksVersion {
		return kinded(ErrHandshake, "%s: not a SOCKS5 server (method selection version %#02x)", s.desc, resp[0])
	}
	switch resp[1] {
	case methodNoAuth:
		return nil
	case methodUserPass:
		if s.user != "" {
			return s.authenticate(rw)
		}
	case methodNone:
		return kinded(ErrAuth, "%s accepts none of the offered authentication methods (%s)", s.desc, offered)
	}
	return kinded(ErrHandshake, "%s chose authentication method %#02x, which was not offered (%s)", s.desc, resp[1], offered)
}

// authenticate runs RFC 1929: VER ULEN UNAME PLEN PASSWD, then VER STATUS.
// The config guarantees 1 to 255 bytes each.
func (s *socks5) authenticate(rw io.ReadWriter) error {
	msg := make([]byte, 0, 3+len(s.user)+len(s.pass))
	msg = append(msg, authVersion, byte(len(s.user)))
	msg = append(msg, s.user...)
	msg = append(msg, byte(len(s.pass)))
	msg = append(msg, s.pass...)
	if _, err := rw.Write(msg); err != nil {
		return kinded(ErrHandshake, "%s: sending username/password: %w", s.desc, err)
	}
	var resp [2]byte
	if _, err := io.ReadFull(rw, resp[:]); err != nil {
		return kinded(ErrHandshake, "%s: reading authentication status: %w", s.desc, eofIsUnexpected(err))
	}
	if resp[0] != authVersion {
		return kinded(ErrHandshake, "%s: authentication status version %#02x, want %#02x", s.desc, resp[0], authVersion)
	}
	if resp[1] != authSuccess {
		return kinded(ErrAuth, "%s rejected username %q (status %#02x)", s.desc, s.user, resp[1])
	}
	return nil
}

// OpenUDP implements Outbound: a UDP ASSOCIATE (RFC 1928 sec. 7).
func (s *socks5) OpenUDP(ctx context.Context, client netip.AddrPort) (UDPConn, error) {
	s.stats.begin()
	u, err := s.associate(ctx, client)
	if err != nil {
		return nil, s.stats.end(err)
	}
	s.stats.end(nil)
	return u, nil
}

func (s *socks5) associate(ctx context.Context, client netip.AddrPort) (*socksUDP, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ctrl, err := sockopt.DialTCP(ctx, newDialer(s.mark), s.server, s.desc)
	if err != nil {
		return nil, fmt.Errorf("UDP association for %s: %w", client, err)
	}
	// The client's UDP address as the proxy will see it is unknown (NAT
	// may sit between), so the request carries all zeros (RFC 1928 sec. 6).
	unspec := socksAddr{ip: netip.IPv4Unspecified()}
	if s.server.Addr().Is6() {
		unspec.ip = netip.IPv6Unspecified()
	}
	var relay netip.AddrPort
	err = handshake(ctx, ctrl, func() error {
		bnd, err := s.request(ctrl, cmdUDPAssociate, unspec)
		if err != nil {
			return err
		}
		relay, err = s.relayAddr(bnd)
		return err
	})
	if err != nil {
		_ = ctrl.Close()
		return nil, fmt.Errorf("UDP association for %s: %w", client, err)
	}
	d := newDialer(s.mark, sockopt.RecvBuffer(udpRecvBuffer))
	c, err := d.DialContext(ctx, "udp", relay.String())
	if err != nil {
		_ = ctrl.Close()
		return nil, fmt.Errorf("UDP association for %s: opening a socket to %s's relay %s: %w", client, s.desc, relay, err)
	}
	pc, ok := c.(*net.UDPConn)
	if !ok {
		_ = c.Close()
		_ = ctrl.Close()
		return nil, fmt.Errorf("UDP association for %s: got a %T, want *net.UDPConn", client, c)
	}
	return newSOCKSUDP(s, ctrl, pc, relay), nil
}

// relayAddr is where datagrams go: the reply's BND, or the proxy's own IP
// when BND is unspecified (common for proxies bound to the wildcard).
func (s *socks5) relayAddr(bnd socksAddr) (netip.AddrPort, error) {
	ap, ok := bnd.addrPort()
	switch {
	case !ok:
		return netip.AddrPort{}, kinded(ErrHandshake, "%s gave the UDP relay address %s; an IP address is needed",
			s.desc, printable(bnd.String(), maxShownLen))
	case ap.Port() == 0:
		return netip.AddrPort{}, kinded(ErrHandshake, "%s gave the UDP relay address %s, without a port", s.desc, ap)
	case ap.Addr().IsUnspecified():
		return netip.AddrPortFrom(s.server.Addr(), ap.Port()), nil
	}
	return ap, nil
}

// maxShownLen bounds how much of a peer's text an error message quotes.
const maxShownLen = 128

// getSendBuf returns a pooled buffer with room for n bytes.
func (s *socks5) getSendBuf(n int) *[]byte {
	if p, ok := s.sendBufs.Get().(*[]byte); ok && cap(*p) >= n {
		return p
	}
	b := make([]byte, 0, n)
	return &b
}

func (s *socks5) putSendBuf(p *[]byte) {
	*p = (*p)[:0]
	s.sendBufs.Put(p)
}
