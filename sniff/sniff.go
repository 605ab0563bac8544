package sniff

import (
	"errors"
	"fmt"
)

var (
	// ErrNeedMore: the bytes so far are a plausible prefix of the protocol
	// but incomplete. The caller may read more (up to MaxPeek on TCP; the
	// next datagram of the flow on UDP, through a QUICSniffer) and call
	// again. TLSServerName, HTTPHost and Sniff("tcp", ...) never return it
	// for an input of MaxPeek bytes or more.
	ErrNeedMore = errors.New("sniff: incomplete message, need more bytes")

	// ErrNotFound: the protocol was recognized and the message is complete
	// (or its name-bearing part is), but it names no domain: a ClientHello
	// without a server_name extension, an HTTP/1.0 request without Host,
	// or a name that is an IP address.
	ErrNotFound = errors.New("sniff: no server name in the message")
)

// MaxPeek is the most bytes the TCP side should buffer for sniffing. One
// TLS record carries at most 2^14 bytes (RFC 8446 §5.1), and real
// ClientHellos stay well inside one: ~0.5 KiB classic, ~1.3-1.9 KiB with a
// post-quantum key share (X25519MLKEM768 adds 1216 bytes, SecP384r1MLKEM1024
// 1665), a few KiB more with ECH, session tickets and padding. 16 KiB covers
// those with room to spare and bounds what a router holds per pending flow
// (a thousand flows being sniffed at once cost 16 MiB at most). An HTTP
// request whose Host field is not within its first 16 KiB is not sniffed.
const MaxPeek = 16 << 10

// Protocol names accepted by Sniff.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// errTooLarge replaces ErrNeedMore once the caller has buffered MaxPeek
// bytes: it may not read more, so the flow is not sniffable.
var errTooLarge = fmt.Errorf("sniff: no server name within the first %d bytes", MaxPeek)

// Sniff returns the domain a flow's first bytes name. For "tcp" b is the
// start of the client's byte stream: a TLS ClientHello (first byte 0x16, a
// handshake record) or an HTTP/1.x request. For "udp" b is the flow's first
// datagram, a QUIC Initial; a ClientHello that continues in later datagrams
// gives ErrNeedMore, and the caller then feeds the datagrams to a
// QUICSniffer.
func Sniff(proto string, b []byte) (domain string, err error) {
	switch proto {
	case ProtoTCP:
		if len(b) == 0 {
			return "", ErrNeedMore
		}
		if b[0] == recordTypeHandshake {
			return TLSServerName(b)
		}
		return HTTPHost(b)
	case ProtoUDP:
		return QUICServerName(b)
	default:
		return "", fmt.Errorf("sniff: unknown protocol %q (want %q or %q)", proto, ProtoTCP, ProtoUDP)
	}
}

// capNeedMore turns ErrNeedMore into errTooLarge when the caller has
// already buffered MaxPeek bytes.
func capNeedMore(n int, name string, err error) (string, error) {
	if err == ErrNeedMore && n >= MaxPeek {
		return "", errTooLarge
	}
	return name, err
}
