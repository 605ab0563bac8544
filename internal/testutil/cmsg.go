package testutil

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Cmsg builds one control message the way the kernel lays it out,
// independently of any decoder (through the real struct cmsghdr).
func Cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// Sockaddr returns ap as the bytes of a struct sockaddr_in or sockaddr_in6.
func Sockaddr(ap netip.AddrPort) []byte {
	port := [2]byte{byte(ap.Port() >> 8), byte(ap.Port())}
	if ap.Addr().Is4() {
		var sa unix.RawSockaddrInet4
		sa.Family = unix.AF_INET
		sa.Port = *(*uint16)(unsafe.Pointer(&port))
		sa.Addr = ap.Addr().As4()
		return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)...)
	}
	var sa unix.RawSockaddrInet6
	sa.Family = unix.AF_INET6
	sa.Port = *(*uint16)(unsafe.Pointer(&port))
	sa.Addr = ap.Addr().As16()
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)...)
}

// OrigDstCmsg is the control message TPROXY's kernel attaches to a
// datagram whose original destination is dst (IP_ORIGDSTADDR or
// IPV6_ORIGDSTADDR).
func OrigDstCmsg(dst netip.AddrPort) []byte {
	if dst.Addr().Is4() {
		return Cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, Sockaddr(dst))
	}
	return Cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, Sockaddr(dst))
}
