package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// AddAddr adds the address p to device dev in the namespace (`ip addr add
// p dev dev`), for what a test needs beyond the lab's addressing: a second
// client address, an upstream proxy's own outgoing address. IPv6
// addresses are added nodad, so they are usable at once, like the lab's.
// They go away with the namespace.
func (n *NS) AddAddr(ctx context.Context, dev string, p netip.Prefix) error {
	args := []string{"-n", n.Name, "addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	_, err := ipOut(ctx, args...)
	return err
}

// HardwareAddr returns the MAC address of device dev in the namespace.
func (n *NS) HardwareAddr(dev string) (net.HardwareAddr, error) {
	var hw net.HardwareAddr
	err := n.Do(func() error {
		ifc, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		hw = ifc.HardwareAddr
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: reading the hardware address of %s: %w", n.Name, dev, err)
	}
	return hw, nil
}

// listenPoll is how often WaitListening looks again: a daemon binds its
// port within milliseconds of starting.
const listenPoll = 20 * time.Millisecond

// WaitListening waits until a TCP socket in the namespace listens on addr,
// or on its family's wildcard address and addr's port, as `ss -ltn` shows
// it. A test uses it to wait for a daemon it started with Start without
// connecting to it: a probe connection would show in the daemon's log and
// counters. It fails after timeout or when ctx is done.
func (n *NS) WaitListening(ctx context.Context, addr netip.AddrPort, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := n.Run(ctx, "ss", "-H", "-l", "-t", "-n")
		if err != nil {
			return err
		}
		if listensOn(out, addr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netns %s: nothing listens on TCP %s after %v", n.Name, addr, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns %s: waiting for a listener on TCP %s: %w", n.Name, addr, ctx.Err())
		case <-time.After(listenPoll):
		}
	}
}

// listensOn reports whether `ss -H -l -t -n` output has a socket
// listening on addr or on the wildcard address of addr's family with
// addr's port. ss shows a dual-stack wildcard socket as "*", an IPv6-only
// one as "[::]".
func listensOn(ssOut string, addr netip.AddrPort) bool {
	want := addr.Addr().Unmap()
	for _, line := range strings.Split(ssOut, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[3] // State Recv-Q Send-Q Local:Port Peer:Port
		i := strings.LastIndexByte(local, ':')
		if i < 0 || local[i+1:] != fmt.Sprint(addr.Port()) {
			continue
		}
		host := strings.Trim(local[:i], "[]")
		if j := strings.IndexByte(host, '%'); j >= 0 {
			host = host[:j] // "198.18.2.2%eth0": bound to a device too
		}
		if host == "*" {
			return true
		}
		got, err := netip.ParseAddr(host)
		if err != nil {
			continue
		}
		got = got.Unmap()
		if got == want || got.IsUnspecified() && got.Is4() == want.Is4() {
			return true
		}
	}
	return false
}
