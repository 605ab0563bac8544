package udp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// checksum16 is the Internet checksum's ones' complement sum, the slow
// and obvious way, independent of sum16.
func checksum16(parts ...[]byte) uint16 {
	var all []byte
	for _, p := range parts {
		all = append(all, p...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var s uint32
	for i := 0; i < len(all); i += 2 {
		s += uint32(all[i])<<8 | uint32(all[i+1])
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// builtPacket is one packet replyPackets produced, flattened.
type builtPacket []byte

// buildReply runs replyPackets and returns its packets.
func buildReply(src, dst netip.AddrPort, p []byte, mtu int, id uint32) ([]builtPacket, bool) {
	var out []builtPacket
	hdrs := map[int][]byte{}
	ok := replyPackets(src, dst, p, mtu, id, func(i int) []byte {
		hdrs[i] = make([]byte, rawHdrRoom)
		return hdrs[i]
	}, func(f rawFragment) {
		out = append(out, append(append(builtPacket(nil), f.hdr...), f.data...))
	})
	return out, ok
}

// reassemble checks the packets as a receiver would (lengths, fragment
// fields, MTU) and returns the UDP datagram they carry.
func reassemble(t *testing.T, pkts []builtPacket, src, dst netip.Addr, mtu int, id uint32) []byte {
	t.Helper()
	var dgram []byte
	for i, pk := range pkts {
		if len(pk) > mtu {
			t.Fatalf("packet %d: %d bytes > MTU %d", i, len(pk), mtu)
		}
		var (
			off, data int
			more      bool
			payload   []byte
		)
		if src.Is4() {
			if pk[0] != 0x45 || pk[9] != protoUDP || pk[8] == 0 {
				t.Fatalf("packet %d: bad IPv4 header % x", i, pk[:20])
			}
			if got := int(binary.BigEndian.Uint16(pk[2:])); got != len(pk) {
				t.Fatalf("packet %d: total length %d, packet %d", i, got, len(pk))
			}
			if netip.AddrFrom4([4]byte(pk[12:16])) != src || netip.AddrFrom4([4]byte(pk[16:20])) != dst {
				t.Fatalf("packet %d: addresses wrong", i)
			}
			fo := binary.BigEndian.Uint16(pk[6:])
			off, more = int(fo&0x1fff)*8, fo&ipv4MoreFrag != 0
			if len(pkts) > 1 && binary.BigEndian.Uint16(pk[4:]) != uint16(id) {
				t.Fatalf("packet %d: id %#x, want %#x", i, binary.BigEndian.Uint16(pk[4:]), uint16(id))
			}
			payload = pk[20:]
		} else {
			if pk[0]>>4 != 6 || pk[7] == 0 {
				t.Fatalf("packet %d: bad IPv6 header % x", i, pk[:40])
			}
			if got := int(binary.BigEndian.Uint16(pk[4:])); got != len(pk)-40 {
				t.Fatalf("packet %d: payload length %d, packet %d", i, got, len(pk))
			}
			if netip.AddrFrom16([16]byte(pk[8:24])) != src || netip.AddrFrom16([16]byte(pk[24:40])) != dst {
				t.Fatalf("packet %d: addresses wrong", i)
			}
			payload = pk[40:]
			switch pk[6] {
			case protoUDP:
				if len(pkts) != 1 {
					t.Fatalf("packet %d of %d has no fragment header", i, len(pkts))
				}
			case protoFrag6:
				f := payload[:8]
				if f[0] != protoUDP || binary.BigEndian.Uint32(f[4:]) != id {
					t.Fatalf("packet %d: fragment header % x", i, f)
				}
				fo := binary.BigEndian.Uint16(f[2:])
				off, more = int(fo&^7), fo&ipv6MoreFrag != 0
				payload = payload[8:]
			default:
				t.Fatalf("packet %d: next header %d", i, pk[6])
			}
		}
		data = len(payload)
		if off != len(dgram) {
			t.Fatalf("packet %d at offset %d, want %d", i, off, len(dgram))
		}
		if more != (i < len(pkts)-1) {
			t.Fatalf("packet %d of %d: more fragments = %v", i, len(pkts), more)
		}
		if more && data%8 != 0 {
			t.Fatalf("packet %d: %d bytes, not a multiple of 8", i, data)
		}
		dgram = append(dgram, payload...)
	}
	return dgram
}

func TestReplyPackets(t *testing.T) {
	pairs := [][2]netip.AddrPort{
		{netip.MustParseAddrPort("198.18.7.9:6881"), netip.MustParseAddrPort("198.18.1.2:51413")},
		{netip.MustParseAddrPort("[2001:2:ff::10]:6881"), netip.MustParseAddrPort("[2001:2:1::2]:51413")},
	}
	for _, pair := range pairs {
		src, dst := pair[0], pair[1]
		v6 := src.Addr().Is6()
		maxPayload := 65535 - 20 - 8
		if v6 {
			maxPayload = 65535 - 8
		}
		for _, mtu := range []int{576, 1280, 1500, 9000, 65535} {
			if v6 && mtu < minMTU6 {
				continue
			}
			for _, n := range []int{0, 1, 7, 8, 9, 100, 547, 548, 549, 1231, 1232, 1233, 1452, 1472, 1473, 8000, 60000, maxPayload} {
				t.Run(fmt.Sprintf("%v/mtu%d/%d", v6, mtu, n), func(t *testing.T) {
					p := payloadOf(n, n)
					const id = 0xa1b2c3d4
					pkts, ok := buildReply(src, dst, p, mtu, id)
					if !ok {
						t.Fatal("refused")
					}
					dgram := reassemble(t, pkts, src.Addr(), dst.Addr(), mtu, id)
					if len(dgram) != 8+n {
						t.Fatalf("datagram of %d bytes, want %d", len(dgram), 8+n)
					}
					if binary.BigEndian.Uint16(dgram[0:]) != src.Port() || binary.BigEndian.Uint16(dgram[2:]) != dst.Port() ||
						int(binary.BigEndian.Uint16(dgram[4:])) != 8+n {
						t.Fatalf("UDP header % x", dgram[:8])
					}
					if !bytes.Equal(dgram[8:], p) {
						t.Fatal("payload changed")
					}
					var pseudo []byte
					if v6 {
						s, d := src.Addr().As16(), dst.Addr().As16()
						pseudo = append(append(pseudo, s[:]...), d[:]...)
						pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(dgram)))
						pseudo = append(pseudo, 0, 0, 0, protoUDP)
					} else {
						s, d := src.Addr().As4(), dst.Addr().As4()
						pseudo = append(append(pseudo, s[:]...), d[:]...)
						pseudo = append(pseudo, 0, protoUDP)
						pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(dgram)))
					}
					if c := binary.BigEndian.Uint16(dgram[6:]); c == 0 || checksum16(pseudo, dgram) != 0xffff {
						t.Fatalf("UDP checksum %#04x does not verify", c)
					}
				})
			}
		}
	}
}

// A checksum that sums to 0 goes out as 0xffff (0 means none in IPv4).
func TestUDPChecksumZero(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.7.9"), netip.MustParseAddr("198.18.1.2")
	udp := []byte{0x1a, 0xe1, 0xc8, 0xd5, 0, 10, 0, 0}
	p := []byte{0, 0}
	c0 := udpChecksum(src, dst, udp, p)
	binary.BigEndian.PutUint16(p, c0) // makes the plain sum 0xffff, its complement 0
	if got := udpChecksum(src, dst, udp, p); got != 0xffff {
		t.Errorf("checksum %#04x, want 0xffff", got)
	}
}

// What cannot be sent is refused before anything is emitted.
func TestReplyPacketsRefuses(t *testing.T) {
	v4, v4b := netip.MustParseAddrPort("198.18.7.9:1"), netip.MustParseAddrPort("198.18.1.2:2")
	v6, v6b := netip.MustParseAddrPort("[2001:2::9]:1"), netip.MustParseAddrPort("[2001:2::2]:2")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), 1)
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
		n, mtu   int
	}{
		{"families differ", v4, v6b, 10, 1500},
		{"mapped source", mapped, v6b, 10, 1500},
		{"IPv4 too long", v4, v4b, 65535 - 20 - 8 + 1, 1500},
		{"IPv6 too long", v6, v6b, 65535 - 8 + 1, 1500},
		{"MTU too small to fragment", v4, v4b, 100, 30},
	} {
		pkts, ok := buildReply(tc.src, tc.dst, make([]byte, tc.n), tc.mtu, 1)
		if ok || len(pkts) > 0 {
			t.Errorf("%s: ok=%v with %d packets, want refused", tc.name, ok, len(pkts))
		}
	}
}

// Any size and MTU: either refused, or packets a receiver reassembles.
func FuzzReplyPackets(f *testing.F) {
	f.Add(uint16(1473), uint16(1500), false)
	f.Add(uint16(60000), uint16(1280), true)
	f.Add(uint16(0), uint16(0), true)
	f.Fuzz(func(t *testing.T, n, mtu uint16, v6 bool) {
		src, dst := netip.MustParseAddrPort("198.18.7.9:1"), netip.MustParseAddrPort("198.18.1.2:2")
		if v6 {
			src, dst = netip.MustParseAddrPort("[2001:2::9]:1"), netip.MustParseAddrPort("[2001:2::2]:2")
		}
		p := payloadOf(int(n), 1)
		pkts, ok := buildReply(src, dst, p, int(mtu), 7)
		if !ok {
			return
		}
		if dgram := reassemble(t, pkts, src.Addr(), dst.Addr(), int(mtu), 7); !bytes.Equal(dgram[8:], p) {
			t.Fatal("payload changed")
		}
	})
}
