package e2e

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"golang.org/x/sys/unix"
)

// mangleAdds records when rules are added to the ip (IPv4) mangle table of
// a namespace, from the kernel's nftables notifications (iptables-nft):
// the moment a repair is in effect, rather than when gatewayd logs it.
type mangleAdds struct {
	mu sync.Mutex
	at []time.Time
}

// first returns the first time rules were added at or after since.
func (m *mangleAdds) first(since time.Time) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.at {
		if !t.Before(since) {
			return t, true
		}
	}
	return time.Time{}, false
}

// watchMangleAdds subscribes to NFNLGRP_NFTABLES in ns until the test
// ends. ok is false when the kernel offers no such notifications (legacy
// iptables is not nftables; the caller then has no kernel-side time).
func watchMangleAdds(t *testing.T, ns *netlab.NS) (m *mangleAdds, ok bool) {
	t.Helper()
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		if err = unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err == nil {
			err = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.NFNLGRP_NFTABLES)
		}
		if err == nil {
			err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000})
		}
		if err != nil {
			unix.Close(fd)
		}
		return err
	}); err != nil {
		t.Logf("no nftables notifications: %v", err)
		return nil, false
	}
	m = &mangleAdds{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue // timeout (to look at done) or overrun
			}
			if now := time.Now(); addsIPMangleRule(buf[:n]) {
				m.mu.Lock()
				m.at = append(m.at, now)
				m.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped; unix.Close(fd) })
	return m, true
}

// addsIPMangleRule reports whether a datagram of nftables notifications
// holds an NFT_MSG_NEWRULE for the ip family's table "mangle".
func addsIPMangleRule(b []byte) bool {
	const newRule = unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE
	for len(b) >= unix.SizeofNlMsghdr {
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < unix.SizeofNlMsghdr || n > len(b) {
			return false
		}
		body := b[unix.SizeofNlMsghdr:n]
		if binary.NativeEndian.Uint16(b[4:6]) == newRule && len(body) > 4 && body[0] == unix.NFPROTO_IPV4 {
			for a := body[4:]; len(a) >= 4; {
				l := int(binary.NativeEndian.Uint16(a[0:2]))
				if l < 4 || l > len(a) {
					break
				}
				if binary.NativeEndian.Uint16(a[2:4])&0x3fff == 1 && string(a[4:l]) == "mangle\x00" {
					return true
				}
				a = a[min((l+3)&^3, len(a)):]
			}
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return false
}
