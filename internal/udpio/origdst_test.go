package udpio

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestOrigDst(t *testing.T) {
	v4 := netip.MustParseAddrPort("198.18.0.9:53")
	v6 := netip.MustParseAddrPort("[2001:2::9]:443")
	mapped := netip.MustParseAddrPort("[::ffff:198.18.0.7]:123")
	pktinfo := cmsg(unix.SOL_IP, unix.IP_PKTINFO, make([]byte, unix.SizeofInet4Pktinfo))
	tos := cmsg(unix.SOL_IP, unix.IP_TOS, []byte{0x10})
	for _, tc := range []struct {
		name string
		oob  []byte
		want netip.AddrPort
		err  error
	}{
		{"ipv4", origDstCmsg(v4), v4, nil},
		{"ipv6", origDstCmsg(v6), v6, nil},
		{"ipv6 mapped is unmapped", origDstCmsg(mapped), netip.MustParseAddrPort("198.18.0.7:123"), nil},
		{"after other messages", slices.Concat(tos, pktinfo, origDstCmsg(v6)), v6, nil},
		{"first of two", slices.Concat(origDstCmsg(v4), origDstCmsg(v6)), v4, nil},
		{"last without padding", slices.Concat(tos, origDstCmsg(v6)[:unix.CmsgLen(unix.SizeofSockaddrInet6)]), v6, nil},
		{"empty", nil, netip.AddrPort{}, ErrNoOrigDst},
		{"only other messages", slices.Concat(tos, pktinfo), netip.AddrPort{}, ErrNoOrigDst},
		{"truncated header", origDstCmsg(v4)[:unix.SizeofCmsghdr-1], netip.AddrPort{}, ErrCmsgTruncated},
		{"truncated data", origDstCmsg(v4)[:unix.CmsgLen(unix.SizeofSockaddrInet4)-1], netip.AddrPort{}, ErrCmsgTruncated},
		{"truncated after another message", slices.Concat(tos, origDstCmsg(v6)[:20]), netip.AddrPort{}, ErrCmsgTruncated},
		{"zero length", withLen(origDstCmsg(v4), 0), netip.AddrPort{}, ErrCmsgMalformed},
		{"length below header", withLen(origDstCmsg(v4), unix.SizeofCmsghdr-1), netip.AddrPort{}, ErrCmsgMalformed},
		{"length beyond buffer", withLen(origDstCmsg(v4), 1<<20), netip.AddrPort{}, ErrCmsgTruncated},
		{"short sockaddr_in", cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr(v4)[:unix.SizeofSockaddrInet4-1]), netip.AddrPort{}, ErrBadSockaddr},
		{"short sockaddr_in6", cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr(v6)[:unix.SizeofSockaddrInet6-1]), netip.AddrPort{}, ErrBadSockaddr},
		{"sockaddr_in6 under IPv4 type", cmsg(unix.SOL_IP, unix.IP_ORIGDSTADDR, sockaddr(v6)), netip.AddrPort{}, ErrBadSockaddr},
		{"sockaddr_in under IPv6 type", cmsg(unix.SOL_IPV6, unix.IPV6_ORIGDSTADDR, sockaddr(v4)), netip.AddrPort{}, ErrBadSockaddr},
		{"wrong level", cmsg(unix.SOL_IPV6, unix.IP_ORIGDSTADDR, sockaddr(v4)), netip.AddrPort{}, ErrNoOrigDst},
		{"wrong type", cmsg(unix.SOL_IP, unix.IP_PKTINFO, sockaddr(v4)), netip.AddrPort{}, ErrNoOrigDst},
		{"port 0", origDstCmsg(netip.MustParseAddrPort("198.18.0.9:0")), netip.AddrPort{}, ErrBadSockaddr},
		{"unspecified", origDstCmsg(netip.MustParseAddrPort("[::]:53")), netip.AddrPort{}, ErrBadSockaddr},
		{"garbage", bytes.Repeat([]byte{0xff}, oobSize), netip.AddrPort{}, ErrCmsgTruncated},
		{"zeros", make([]byte, oobSize), netip.AddrPort{}, ErrCmsgMalformed},
	} {
		got, err := OrigDst(tc.oob)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s: origDst = %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// withLen overwrites the cmsg_len of the first message.
func withLen(b []byte, l int) []byte {
	b = slices.Clone(b)
	(*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(l)
	return b
}

// The decoder agrees with x/sys's parser on everything that parser can read.
func TestOrigDstMatchesUnix(t *testing.T) {
	for _, ap := range []string{"198.18.0.1:1", "198.19.255.254:65535", "[2001:2::1]:5353", "[2001:2:0:ffff::]:7"} {
		dst := netip.MustParseAddrPort(ap)
		oob := origDstCmsg(dst)
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("ParseSocketControlMessage(%s) = %v, %v", ap, msgs, err)
		}
		sa, err := unix.ParseOrigDstAddr(&msgs[0])
		if err != nil {
			t.Fatalf("ParseOrigDstAddr(%s): %v", ap, err)
		}
		var want netip.AddrPort
		switch sa := sa.(type) {
		case *unix.SockaddrInet4:
			want = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			want = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
		}
		if got, err := OrigDst(oob); err != nil || got != want || got != dst {
			t.Errorf("OrigDst(%s) = %v, %v; x/sys says %v", ap, got, err, want)
		}
	}
}

func FuzzOrigDst(f *testing.F) {
	v4 := origDstCmsg(netip.MustParseAddrPort("198.18.0.9:53"))
	v6 := origDstCmsg(netip.MustParseAddrPort("[2001:2::9]:443"))
	tos := cmsg(unix.SOL_IP, unix.IP_TOS, []byte{0x10})
	for _, seed := range [][]byte{nil, v4, v6, slices.Concat(tos, v6), slices.Concat(v4, v6), v4[:10], v6[:30], make([]byte, oobSize)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, oob []byte) {
		ap, err := OrigDst(oob)
		if err != nil {
			if ap != (netip.AddrPort{}) {
				t.Fatalf("origDst returned %v with error %v", ap, err)
			}
			return
		}
		a := ap.Addr()
		if !ap.IsValid() || ap.Port() == 0 || a.Is4In6() || a.Zone() != "" || a.IsUnspecified() {
			t.Fatalf("origDst returned unusable %v", ap)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	for _, tc := range []struct {
		name string
		oob  []byte
	}{
		{"ipv4", origDstCmsg(netip.MustParseAddrPort("198.18.0.9:53"))},
		{"ipv6", origDstCmsg(netip.MustParseAddrPort("[2001:2::9]:443"))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := OrigDst(tc.oob); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The kernel's own control messages decode, for both families and for IPv4
// datagrams on a dual-stack socket (which carry the SOL_IP message, so such
// a socket needs both options). IP_RECVORIGDSTADDR needs no privilege.
func TestOrigDstFromKernel(t *testing.T) {
	for _, tc := range []struct{ network, listen, send string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
		{"udp", "[::]:0", "127.0.0.1"},
		{"udp", "[::]:0", "::1"},
	} {
		lc := net.ListenConfig{Control: sockoptRecvOrigDst}
		pc, err := lc.ListenPacket(context.Background(), tc.network, tc.listen)
		if err != nil {
			if tc.send == "::1" {
				t.Logf("%s %s: %v (no IPv6?)", tc.network, tc.listen, err)
				continue
			}
			t.Fatalf("listening on %s %s: %v", tc.network, tc.listen, err)
		}
		ln := pc.(*net.UDPConn)
		dst := netip.AddrPortFrom(netip.MustParseAddr(tc.send), localAddr(ln).Port())
		sender, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			_ = ln.Close()
			t.Fatalf("dialing %s: %v", dst, err)
		}
		if _, err := sender.Write([]byte("x")); err != nil {
			t.Fatalf("sending to %s: %v", dst, err)
		}
		_ = ln.SetReadDeadline(time.Now().Add(failAfter))
		oob := make([]byte, oobSize)
		_, oobn, flags, _, err := ln.ReadMsgUDPAddrPort(make([]byte, 16), oob)
		_ = sender.Close()
		_ = ln.Close()
		if err != nil {
			t.Fatalf("%s %s: receiving: %v", tc.network, tc.listen, err)
		}
		got, err := OrigDst(oob[:oobn])
		if err != nil || got != dst || flags&unix.MSG_CTRUNC != 0 {
			t.Errorf("%s %s from %s: origDst = %v, %v (flags %#x); want %v", tc.network, tc.listen, tc.send, got, err, flags, dst)
		}
	}
}
