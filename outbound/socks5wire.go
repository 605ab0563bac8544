package outbound

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// SOCKS5 protocol constants (RFC 1928, RFC 1929).
const (
	socksVersion = 0x05
	authVersion  = 0x01 // version of the RFC 1929 username/password sub-negotiation

	methodNoAuth   = 0x00
	methodUserPass = 0x02
	methodNone     = 0xff // "no acceptable methods"

	cmdConnect      = 0x01
	cmdUDPAssociate = 0x03

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04

	repSucceeded = 0x00
	authSuccess  = 0x00
)

// Sizes on the wire, in bytes.
const (
	replyHeadLen = 4 // VER REP RSV ATYP
	udpHeadLen   = 4 // RSV(2) FRAG ATYP
	portLen      = 2
	// maxAddrLen is the longest ADDR+PORT: a domain's length byte, 255
	// bytes of name and the port.
	maxAddrLen = 1 + 255 + portLen
	// maxUDPHeader is the longest UDP header gatewayd writes (an IPv6
	// destination; it never sends domains over UDP).
	maxUDPHeader = udpHeadLen + net.IPv6len + portLen
)

// socksAddr is an address field (ATYP, ADDR, PORT): an IP, or a domain.
type socksAddr struct {
	ip     netip.Addr // valid unless domain is set
	domain string
	port   uint16
}

func (a socksAddr) String() string {
	if a.domain != "" {
		return net.JoinHostPort(a.domain, strconv.Itoa(int(a.port)))
	}
	return netip.AddrPortFrom(a.ip, a.port).String()
}

// addrPort is a as an IP address and port: the IP, or a domain that is
// an IP literal.
func (a socksAddr) addrPort() (netip.AddrPort, bool) {
	ip := a.ip
	if a.domain != "" {
		var err error
		if ip, err = netip.ParseAddr(a.domain); err != nil {
			return netip.AddrPort{}, false
		}
	}
	if !ip.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap().WithZone(""), a.port), true
}

// appendTo appends ATYP, ADDR and PORT. The domain must be 1 to 255
// bytes (proxyHostName's are) and the IP valid.
func (a socksAddr) appendTo(b []byte) []byte {
	switch ip := a.ip.Unmap(); {
	case a.domain != "":
		b = append(b, atypDomain, byte(len(a.domain)))
		b = append(b, a.domain...)
	case ip.Is4():
		b = append(b, atypIPv4)
		b = append(b, ip.AsSlice()...)
	default:
		b = append(b, atypIPv6)
		b = append(b, ip.AsSlice()...)
	}
	return binary.BigEndian.AppendUint16(b, a.port)
}

// targetOf is the address to ask a SOCKS5 proxy for: the domain when
// preferred and sendable, else the IP.
func targetOf(dst Dest, preferNames bool) socksAddr {
	if preferNames {
		if name, ok := proxyHostName(dst.Domain); ok {
			return socksAddr{domain: name, port: dst.Addr.Port()}
		}
	}
	return socksAddr{ip: dst.Addr.Addr().Unmap().WithZone(""), port: dst.Addr.Port()}
}

// addrLen is the length of ADDR+PORT for atyp; for a domain, first is
// the ADDR's first byte (the name's length).
func addrLen(atyp, first byte) (int, error) {
	switch atyp {
	case atypIPv4:
		return net.IPv4len + portLen, nil
	case atypIPv6:
		return net.IPv6len + portLen, nil
	case atypDomain:
		return 1 + int(first) + portLen, nil
	}
	return 0, fmt.Errorf("unknown address type %#02x", atyp)
}

// decodeAddr decodes ADDR+PORT of type atyp from the start of b and
// returns its length.
func decodeAddr(atyp byte, b []byte) (socksAddr, int, error) {
	if len(b) == 0 {
		return socksAddr{}, 0, errors.New("address missing")
	}
	n, err := addrLen(atyp, b[0])
	if err != nil {
		return socksAddr{}, 0, err
	}
	if len(b) < n {
		return socksAddr{}, 0, fmt.Errorf("address cut short: %d of %d bytes", len(b), n)
	}
	a := socksAddr{port: binary.BigEndian.Uint16(b[n-portLen : n])}
	switch atyp {
	case atypIPv4:
		a.ip = netip.AddrFrom4([4]byte(b[:net.IPv4len]))
	case atypIPv6:
		a.ip = netip.AddrFrom16([16]byte(b[:net.IPv6len]))
	default:
		a.domain = string(b[1 : n-portLen])
	}
	return a, n, nil
}

// readAddr reads ADDR+PORT of type atyp from r, exactly.
func readAddr(r io.Reader, atyp byte) (socksAddr, error) {
	var buf [maxAddrLen]byte
	first := 0
	if atyp == atypDomain {
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return socksAddr{}, err
		}
		first = 1
	}
	n, err := addrLen(atyp, buf[0])
	if err != nil {
		return socksAddr{}, err
	}
	if _, err := io.ReadFull(r, buf[first:n]); err != nil {
		return socksAddr{}, err
	}
	a, _, err := decodeAddr(atyp, buf[:n])
	return a, err
}

// socksReply is a server's reply to a request.
type socksReply struct {
	rep byte
	bnd socksAddr // only read when rep is repSucceeded
}

// readReply reads one reply from r without reading a byte past it. On a
// failure code it stops after the head (the server closes the connection
// anyway, and may not send a complete address). Malformed replies give
// errors matching ErrHandshake.
func readReply(r io.Reader) (socksReply, error) {
	var head [replyHeadLen]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return socksReply{}, kinded(ErrHandshake, "%w", eofIsUnexpected(err))
	}
	if head[0] != socksVersion {
		return socksReply{}, kinded(ErrHandshake, "reply version %#02x, want %#02x", head[0], socksVersion)
	}
	rep := socksReply{rep: head[1]}
	if rep.rep != repSucceeded {
		return rep, nil
	}
	a, err := readAddr(r, head[3])
	if err != nil {
		return socksReply{}, kinded(ErrHandshake, "bound address: %w", eofIsUnexpected(err))
	}
	rep.bnd = a
	return rep, nil
}

// eofIsUnexpected turns io.EOF into io.ErrUnexpectedEOF: a reply was due.
func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// repFailure describes a failure reply code and names the error kind it
// maps to.
func repFailure(rep byte) (text string, kind error) {
	switch rep {
	case 0x01:
		return "general SOCKS server failure", ErrProxy
	case 0x02:
		return "connection not allowed by ruleset", ErrRefused
	case 0x03:
		return "network unreachable", ErrUnreachable
	case 0x04:
		return "host unreachable", ErrUnreachable
	case 0x05:
		return "connection refused", ErrRefused
	case 0x06:
		return "TTL expired", ErrTimeout
	case 0x07:
		return "command not supported", ErrProxy
	case 0x08:
		return "address type not supported", ErrProxy
	}
	return "unassigned reply code", ErrProxy
}

// appendRequest appends a request: VER CMD RSV ATYP DST.ADDR DST.PORT.
func appendRequest(b []byte, cmd byte, dst socksAddr) []byte {
	return dst.appendTo(append(b, socksVersion, cmd, 0))
}

// appendUDPHeader appends the header of a datagram to dst: RSV(2),
// FRAG 0, ATYP, DST.ADDR, DST.PORT.
func appendUDPHeader(b []byte, dst netip.AddrPort) []byte {
	return socksAddr{ip: dst.Addr(), port: dst.Port()}.appendTo(append(b, 0, 0, 0))
}

// parseUDPHeader decodes the header of a datagram from a UDP relay and
// returns its FRAG field, the remote it came from and the header length.
// RSV is not checked (RFC 1928 gives it no meaning for the client).
func parseUDPHeader(b []byte) (frag byte, src socksAddr, n int, err error) {
	if len(b) < udpHeadLen {
		return 0, socksAddr{}, 0, fmt.Errorf("datagram of %d bytes is shorter than a SOCKS5 UDP header", len(b))
	}
	src, n, err = decodeAddr(b[3], b[udpHeadLen:])
	if err != nil {
		return 0, socksAddr{}, 0, err
	}
	return b[2], src, udpHeadLen + n, nil
}
