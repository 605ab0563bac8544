package netlab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Ping sends ICMP echo requests to dst from inside the namespace (raw socket
// created with Do, so no ping(8) binary is needed), one every 500ms, until a
// matching echo reply arrives, timeout passes or ctx is done.
func (n *NS) Ping(ctx context.Context, dst netip.Addr, timeout time.Duration) error {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() && !dst.Is4In6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var c net.PacketConn
	if err := n.Do(func() (err error) {
		c, err = net.ListenPacket(network, "")
		return err
	}); err != nil {
		return fmt.Errorf("netns %s: ping %s: %w", n.Name, dst, err)
	}
	defer c.Close()

	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	id := uint16(os.Getpid())
	to := &net.IPAddr{IP: dst.AsSlice()}
	buf := make([]byte, 1500)
	for seq := uint16(1); ; seq++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := c.WriteTo(echoRequest(reqType, id, seq), to); err != nil {
			return fmt.Errorf("netns %s: ping %s: %w", n.Name, dst, err)
		}
		wait := time.Now().Add(500 * time.Millisecond)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = c.SetReadDeadline(wait)
		for {
			nr, from, err := c.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			} else if err != nil {
				return fmt.Errorf("netns %s: ping %s: %w", n.Name, dst, err)
			}
			// IPv4 raw reads come without the IP header (stripped by package net).
			b := buf[:nr]
			src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
			if len(b) >= 8 && b[0] == replyType && src.Unmap() == dst.Unmap() &&
				binary.BigEndian.Uint16(b[4:]) == id {
				return nil
			}
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("netns %s: ping %s: no echo reply within %v", n.Name, dst, timeout)
		}
	}
}

// echoRequest builds an ICMP(v6) echo request. The checksum is filled in for
// ICMPv4; for ICMPv6 the kernel computes it on raw sockets.
func echoRequest(typ byte, id, seq uint16) []byte {
	b := []byte{typ, 0, 0, 0, 0, 0, 0, 0, 'g', 'w', 'd', 'l', 'a', 'b'}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	if typ == 8 {
		var sum uint32
		for i := 0; i < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
	}
	return b
}
