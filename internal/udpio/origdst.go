package udpio

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Control message layout (linux/<arch>): struct cmsghdr is a size_t length
// followed by two ints (level, type); data starts at CMSG_LEN(0) and every
// header is aligned to sizeof(size_t).
const (
	cmsgAlign   = bits.UintSize / 8
	cmsgLenSize = unix.SizeofCmsghdr - 8 // size_t cmsg_len
	cmsgData    = (unix.SizeofCmsghdr + cmsgAlign - 1) &^ (cmsgAlign - 1)
)

// Offsets in struct sockaddr_in / sockaddr_in6. The family is in host
// order, the port in network order.
const (
	saFamilyOff = 0
	saPortOff   = 2
	sin4AddrOff = 4
	sin6AddrOff = 8
)

// oobSize fits the original-destination message of either family: a
// dual-stack socket gets IP_ORIGDSTADDR for IPv4 datagrams and
// IPV6_ORIGDSTADDR for IPv6 ones.
var oobSize = unix.CmsgSpace(unix.SizeofSockaddrInet6) + unix.CmsgSpace(unix.SizeofSockaddrInet4)

// OOBSize is the control buffer size OrigDst needs, for either family (a
// RecvBatch's oobLen, or ReadMsgUDP's oob).
func OOBSize() int { return oobSize }

// Why a datagram's original destination could not be read (OrigDst's
// errors). Values, so the per-datagram path allocates nothing.
var (
	ErrCmsgTruncated = errors.New("control message truncated")
	ErrCmsgMalformed = errors.New("control message length invalid")
	ErrNoOrigDst     = errors.New("no original destination control message")
	ErrBadSockaddr   = errors.New("original destination sockaddr invalid")
)

// OrigDst returns the original destination carried by an IP_ORIGDSTADDR or
// IPV6_ORIGDSTADDR control message in oob, unmapped and without zone. Every
// length is checked; other control messages are skipped; the first
// original-destination message decides. It never allocates.
func OrigDst(oob []byte) (netip.AddrPort, error) {
	for len(oob) > 0 {
		if len(oob) < unix.SizeofCmsghdr {
			return netip.AddrPort{}, ErrCmsgTruncated
		}
		var l uint64
		if cmsgLenSize == 8 {
			l = binary.NativeEndian.Uint64(oob)
		} else {
			l = uint64(binary.NativeEndian.Uint32(oob))
		}
		level := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize:]))
		typ := int32(binary.NativeEndian.Uint32(oob[cmsgLenSize+4:]))
		switch {
		case l < cmsgData:
			return netip.AddrPort{}, ErrCmsgMalformed
		case l > uint64(len(oob)):
			return netip.AddrPort{}, ErrCmsgTruncated
		}
		data := oob[cmsgData:l]
		switch {
		case level == unix.SOL_IP && typ == unix.IP_ORIGDSTADDR:
			return sockaddr4(data)
		case level == unix.SOL_IPV6 && typ == unix.IPV6_ORIGDSTADDR:
			return sockaddr6(data)
		}
		// The last message may lack its trailing padding.
		next := (l + cmsgAlign - 1) &^ (cmsgAlign - 1)
		if next >= uint64(len(oob)) {
			break
		}
		oob = oob[next:]
	}
	return netip.AddrPort{}, ErrNoOrigDst
}

func sockaddr4(b []byte) (netip.AddrPort, error) {
	if len(b) < unix.SizeofSockaddrInet4 || binary.NativeEndian.Uint16(b[saFamilyOff:]) != unix.AF_INET {
		return netip.AddrPort{}, ErrBadSockaddr
	}
	return checkDst(netip.AddrPortFrom(
		netip.AddrFrom4([4]byte(b[sin4AddrOff:sin4AddrOff+4])),
		binary.BigEndian.Uint16(b[saPortOff:])))
}

func sockaddr6(b []byte) (netip.AddrPort, error) {
	if len(b) < unix.SizeofSockaddrInet6 || binary.NativeEndian.Uint16(b[saFamilyOff:]) != unix.AF_INET6 {
		return netip.AddrPort{}, ErrBadSockaddr
	}
	return checkDst(netip.AddrPortFrom(
		netip.AddrFrom16([16]byte(b[sin6AddrOff:sin6AddrOff+16])).Unmap(),
		binary.BigEndian.Uint16(b[saPortOff:])))
}

// checkDst refuses destinations no datagram can be relayed to.
func checkDst(ap netip.AddrPort) (netip.AddrPort, error) {
	if ap.Port() == 0 || ap.Addr().IsUnspecified() {
		return netip.AddrPort{}, ErrBadSockaddr
	}
	return ap, nil
}
