package udp

import (
	"encoding/binary"
	"net/netip"
)

// Building the IP packets of a reply for a raw (IPPROTO_RAW, header
// included) socket: gatewayd writes the IP and UDP headers, the UDP
// checksum, and, for a datagram longer than the path MTU, the fragments.
// The kernel fills in only the IPv4 header checksum and total length; it
// fragments nothing a header-including socket sends (it refuses a packet
// longer than the device MTU with EMSGSIZE), for IPv4 and IPv6 alike.

// Header sizes and IP protocol numbers.
const (
	ipv4HdrLen   = 20
	ipv6HdrLen   = 40
	fragHdrLen   = 8 // IPv6 fragment extension header
	udpHdrLen    = 8
	protoUDP     = 17
	protoFrag6   = 44
	ipv4MoreFrag = 0x2000
	ipv6MoreFrag = 0x1
	replyHopLim  = 64
)

// rawHdrRoom is the most header bytes one packet needs: IPv6, a fragment
// header and the UDP header (in the first fragment).
const rawHdrRoom = ipv6HdrLen + fragHdrLen + udpHdrLen

// Minimum MTUs: every IPv4 host reassembles 576-byte datagrams, every
// IPv6 link carries 1280-byte packets. A reply that fits needs no look at
// the route.
const (
	minMTU4 = 576
	minMTU6 = 1280
)

// maxIPLen is the most an IP datagram carries after its (unfragmented)
// header: the 16-bit length fields of IPv4 (total length) and IPv6
// (payload length).
const maxIPLen = 65535

// rawFragment is one packet of a reply: its headers (in a buffer the
// caller owns) and the part of the payload it carries.
type rawFragment struct {
	hdr  []byte
	data []byte
}

// replyPackets splits a UDP datagram from src to dst with payload p into
// packets no longer than mtu, writing each packet's headers into the
// buffer hdr(i) returns (rawHdrRoom bytes) and calling emit with it. id
// identifies the fragments of one datagram (IPv4 uses its low 16 bits
// and must not be 0). It returns false, emitting nothing, if the datagram
// cannot be sent (too long, mixed families, MTU too small).
func replyPackets(src, dst netip.AddrPort, p []byte, mtu int, id uint32, hdr func(i int) []byte, emit func(rawFragment)) bool {
	v6 := src.Addr().Is6()
	if v6 != dst.Addr().Is6() || src.Addr().Is4In6() || dst.Addr().Is4In6() {
		return false
	}
	udpLen := udpHdrLen + len(p)
	var udp [udpHdrLen]byte
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(src.Addr(), dst.Addr(), udp[:], p))

	ipHdr := ipv4HdrLen
	if v6 {
		ipHdr = ipv6HdrLen
		if udpLen > maxIPLen {
			return false
		}
	} else if ipHdr+udpLen > maxIPLen {
		return false
	}
	if ipHdr+udpLen <= mtu {
		h := hdr(0)[:ipHdr+udpHdrLen]
		writeIPHeader(h, src.Addr(), dst.Addr(), udpLen, protoUDP)
		copy(h[ipHdr:], udp[:])
		emit(rawFragment{hdr: h, data: p})
		return true
	}
	// Fragments: every one but the last carries a multiple of 8 bytes of
	// the UDP datagram (header included).
	per := mtu - ipHdr
	if v6 {
		per -= fragHdrLen
	}
	per &^= 7
	if per < udpHdrLen+8 {
		return false
	}
	for i, off := 0, 0; off < udpLen; i++ {
		n := min(per, udpLen-off)
		more := off+n < udpLen
		h := hdr(i)
		at := ipHdr
		if v6 {
			writeIPHeader(h, src.Addr(), dst.Addr(), fragHdrLen+n, protoFrag6)
			f := h[ipv6HdrLen : ipv6HdrLen+fragHdrLen]
			f[0], f[1] = protoUDP, 0
			fo := uint16(off)
			if more {
				fo |= ipv6MoreFrag
			}
			binary.BigEndian.PutUint16(f[2:], fo)
			binary.BigEndian.PutUint32(f[4:], id)
			at += fragHdrLen
		} else {
			writeIPHeader(h, src.Addr(), dst.Addr(), n, protoUDP)
			binary.BigEndian.PutUint16(h[4:], uint16(id))
			fo := uint16(off / 8)
			if more {
				fo |= ipv4MoreFrag
			}
			binary.BigEndian.PutUint16(h[6:], fo)
		}
		var data []byte
		if off == 0 {
			copy(h[at:], udp[:])
			at += udpHdrLen
			data = p[:n-udpHdrLen]
		} else {
			data = p[off-udpHdrLen : off-udpHdrLen+n]
		}
		emit(rawFragment{hdr: h[:at], data: data})
		off += n
	}
	return true
}

// writeIPHeader writes an IPv4 or IPv6 header for plen bytes after it
// (next header proto). IPv4's identification, flags and checksum are left
// 0: the kernel picks an identification and sums the header.
func writeIPHeader(h []byte, src, dst netip.Addr, plen int, proto byte) {
	if src.Is4() {
		clear(h[:ipv4HdrLen])
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(ipv4HdrLen+plen))
		h[8], h[9] = replyHopLim, proto
		s, d := src.As4(), dst.As4()
		copy(h[12:16], s[:])
		copy(h[16:20], d[:])
		return
	}
	clear(h[:8])
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(plen))
	h[6], h[7] = proto, replyHopLim
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
}

// udpChecksum is the UDP checksum of header udp (checksum field 0) and
// payload p between src and dst, with the pseudo-header of their family.
// A sum of 0 is sent as 0xffff (0 means "none" in IPv4, and is not
// allowed in IPv6).
func udpChecksum(src, dst netip.Addr, udp, p []byte) uint16 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		acc = sum16(s[:], acc)
		acc = sum16(d[:], acc)
	} else {
		s, d := src.As16(), dst.As16()
		acc = sum16(s[:], acc)
		acc = sum16(d[:], acc)
	}
	acc += protoUDP + uint64(len(udp)+len(p))
	acc = sum16(udp, acc)
	acc = sum16(p, acc)
	for acc>>16 != 0 {
		acc = acc&0xffff + acc>>16
	}
	c := ^uint16(acc)
	if c == 0 {
		c = 0xffff
	}
	return c
}

// sum16 adds b, as big-endian 16-bit words (an odd last byte padded with
// a zero), to the ones' complement accumulator acc (folded by the caller).
// It adds 32-bit words where it can: 2^16 ≡ 1 modulo 2^16-1, so they fold
// to the same sum.
func sum16(b []byte, acc uint64) uint64 {
	for len(b) >= 16 {
		acc += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) + uint64(binary.BigEndian.Uint32(b[12:]))
		b = b[16:]
	}
	for len(b) >= 4 {
		acc += uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b) >= 2 {
		acc += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	return acc
}
