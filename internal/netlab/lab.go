package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Interface names inside the lab namespaces.
const (
	ClientIf  = "eth0"   // client side of the LAN veth
	LANBridge = "br-lan" // gateway LAN bridge (carries the gateway's LAN addresses)
	LANPort   = "lan0"   // gateway side of the LAN veth, a port of br-lan
	WANIf     = "wan0"   // gateway side of the WAN veth
	ServerIf  = "eth0"   // server side of the WAN veth
)

// NamePrefix starts the name of every namespace this package creates.
const NamePrefix = "gwdlab-"

// Addrs is one address per family.
type Addrs struct{ V4, V6 netip.Addr }

// Prefixes is one prefix per family.
type Prefixes struct{ V4, V6 netip.Prefix }

// Lab is a client <-> gateway <-> server namespace lab; see the package doc
// for the topology. Build it with New (or NewT in tests) and release it with
// Close.
type Lab struct {
	Client, Gateway, Server *NS

	ClientAddr Addrs   // client eth0
	GatewayLAN Addrs   // gateway br-lan
	GatewayWAN Addrs   // gateway wan0
	ServerAddr Addrs   // server eth0
	Remotes    []Addrs // extra server addresses on lo, reached via the gateway

	LANSubnet, WANSubnet Prefixes

	ID string // "gwdlab-<pid>-<n>-<rand>", the common prefix of the namespace names

	closeOnce sync.Once
	closeErr  error
}

// The gateway routes these prefixes, which hold Remotes, to the server.
const (
	remoteNet4 = "198.19.0.0/16"
	remoteNet6 = "2001:2:ff::/64"
)

var labCounter atomic.Uint64

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func newLabValue() (*Lab, error) {
	var rnd [2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%s%d-%d-%s", NamePrefix, os.Getpid(), labCounter.Add(1), hex.EncodeToString(rnd[:]))
	return &Lab{
		ID:         id,
		Client:     &NS{Name: id + "-client"},
		Gateway:    &NS{Name: id + "-gw"},
		Server:     &NS{Name: id + "-server"},
		ClientAddr: Addrs{mustAddr("198.18.1.2"), mustAddr("2001:2:1::2")},
		GatewayLAN: Addrs{mustAddr("198.18.1.1"), mustAddr("2001:2:1::1")},
		GatewayWAN: Addrs{mustAddr("198.18.2.1"), mustAddr("2001:2:2::1")},
		ServerAddr: Addrs{mustAddr("198.18.2.2"), mustAddr("2001:2:2::2")},
		Remotes: []Addrs{
			{mustAddr("198.19.0.10"), mustAddr("2001:2:ff::10")},
			{mustAddr("198.19.0.11"), mustAddr("2001:2:ff::11")},
			{mustAddr("198.19.0.12"), mustAddr("2001:2:ff::12")},
		},
		LANSubnet: Prefixes{mustPrefix("198.18.1.0/24"), mustPrefix("2001:2:1::/64")},
		WANSubnet: Prefixes{mustPrefix("198.18.2.0/24"), mustPrefix("2001:2:2::/64")},
	}, nil
}

// Namespaces returns the client, gateway and server namespaces.
func (l *Lab) Namespaces() []*NS { return []*NS{l.Client, l.Gateway, l.Server} }

// New sweeps stale labs of dead processes, then creates the three
// namespaces, wires and addresses them, and checks that the client reaches
// Remotes[0] over IPv4 and IPv6 through the gateway. On any error it removes
// whatever it created.
func New(ctx context.Context) (*Lab, error) {
	if err := SweepStale(ctx); err != nil {
		return nil, err
	}
	l, err := newLabValue()
	if err != nil {
		return nil, err
	}
	if err := l.setup(ctx); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
		}
		return nil, fmt.Errorf("netlab: build lab %s: %w", l.ID, err)
	}
	return l, nil
}

func (l *Lab) setup(ctx context.Context) error {
	c, g, s := l.Client.Name, l.Gateway.Name, l.Server.Name
	pfx := func(a netip.Addr, bits int) string { return netip.PrefixFrom(a, bits).String() }
	for _, n := range l.Namespaces() {
		if _, err := ipOut(ctx, "netns", "add", n.Name); err != nil {
			return err
		}
	}
	if err := l.disableDAD(ctx); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", g, "link", "add", LANBridge, "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", c, "link", "add", ClientIf, "type", "veth", "peer", "name", LANPort, "netns", g},
		{"-n", s, "link", "add", ServerIf, "type", "veth", "peer", "name", WANIf, "netns", g},
		{"-n", g, "link", "set", LANPort, "master", LANBridge},

		{"-n", c, "addr", "add", pfx(l.ClientAddr.V4, 24), "dev", ClientIf},
		{"-n", c, "addr", "add", pfx(l.ClientAddr.V6, 64), "dev", ClientIf, "nodad"},
		{"-n", g, "addr", "add", pfx(l.GatewayLAN.V4, 24), "dev", LANBridge},
		{"-n", g, "addr", "add", pfx(l.GatewayLAN.V6, 64), "dev", LANBridge, "nodad"},
		{"-n", g, "addr", "add", pfx(l.GatewayWAN.V4, 24), "dev", WANIf},
		{"-n", g, "addr", "add", pfx(l.GatewayWAN.V6, 64), "dev", WANIf, "nodad"},
		{"-n", s, "addr", "add", pfx(l.ServerAddr.V4, 24), "dev", ServerIf},
		{"-n", s, "addr", "add", pfx(l.ServerAddr.V6, 64), "dev", ServerIf, "nodad"},
	}
	for _, r := range l.Remotes {
		steps = append(steps,
			[]string{"-n", s, "addr", "add", pfx(r.V4, 32), "dev", "lo"},
			[]string{"-n", s, "addr", "add", pfx(r.V6, 128), "dev", "lo", "nodad"})
	}
	steps = append(steps, [][]string{
		{"-n", c, "link", "set", "lo", "up"},
		{"-n", g, "link", "set", "lo", "up"},
		{"-n", s, "link", "set", "lo", "up"},
		{"-n", c, "link", "set", ClientIf, "up"},
		{"-n", g, "link", "set", LANPort, "up"},
		{"-n", g, "link", "set", LANBridge, "up"},
		{"-n", g, "link", "set", WANIf, "up"},
		{"-n", s, "link", "set", ServerIf, "up"},

		{"-n", c, "-4", "route", "add", "default", "via", l.GatewayLAN.V4.String()},
		{"-n", c, "-6", "route", "add", "default", "via", l.GatewayLAN.V6.String()},
		{"-n", s, "-4", "route", "add", "default", "via", l.GatewayWAN.V4.String()},
		{"-n", s, "-6", "route", "add", "default", "via", l.GatewayWAN.V6.String()},
		{"-n", g, "-4", "route", "add", remoteNet4, "via", l.ServerAddr.V4.String()},
		{"-n", g, "-6", "route", "add", remoteNet6, "via", l.ServerAddr.V6.String()},
	}...)
	for _, st := range steps {
		if _, err := ipOut(ctx, st...); err != nil {
			return err
		}
	}
	if err := l.waitLinksUp(ctx); err != nil {
		return err
	}
	sysctls := [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
	}
	// With br_netfilter loaded, bridged packets pass iptables at the bridge
	// layer, where TPROXY's socket assignment is lost; a router running a
	// TPROXY gateway turns that off, and so does the lab.
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		sysctls = append(sysctls,
			[2]string{"net.bridge.bridge-nf-call-iptables", "0"},
			[2]string{"net.bridge.bridge-nf-call-ip6tables", "0"})
	}
	for _, kv := range sysctls {
		if err := l.Gateway.Sysctl(ctx, kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, dst := range []netip.Addr{l.Remotes[0].V4, l.Remotes[0].V6} {
		if err := l.Client.Ping(ctx, dst, 3*time.Second); err != nil {
			return fmt.Errorf("reachability check client -> %s failed: %w", dst, err)
		}
	}
	return nil
}

// disableDAD turns off duplicate address detection in all three namespaces
// before any link exists, so that link-local addresses are usable at once
// too. Without it, the gateway cannot resolve a neighbour for a *forwarded*
// packet during the first second or so: such neighbour solicitations are
// sourced from the outgoing link's link-local address and are not sent at
// all while it is tentative, which costs a 1s retransmit per link.
func (l *Lab) disableDAD(ctx context.Context) error {
	for _, n := range l.Namespaces() {
		if _, err := n.Run(ctx, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"); err != nil {
			return err
		}
	}
	return nil
}

// waitLinksUp polls every lab link with a single-device RTM_GETLINK
// (`ip -n NS link show dev X`) until it reports carrier and operstate UP.
// Besides waiting, such a request makes the kernel process the device's
// pending link-watch event at once (linkwatch_sync_dev). Without that, the
// bridge's carrier-on event, which the kernel treats as non-urgent, can wait
// up to a second, and until it is processed IPv6 on br-lan is not ready and
// the gateway ignores neighbour solicitations for 2001:2:1::1.
func (l *Lab) waitLinksUp(ctx context.Context) error {
	links := []struct {
		ns  *NS
		dev string
	}{
		{l.Client, ClientIf}, {l.Gateway, LANPort}, {l.Gateway, LANBridge},
		{l.Gateway, WANIf}, {l.Server, ServerIf},
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, lk := range links {
		for {
			out, err := ipOut(ctx, "-n", lk.ns.Name, "-o", "link", "show", "dev", lk.dev)
			if err != nil {
				return err
			}
			if strings.Contains(out, "state UP") && !strings.Contains(out, "NO-CARRIER") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("netns %s: link %s not up: %s", lk.ns.Name, lk.dev, strings.TrimSpace(out))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// Close kills the processes started in the lab's namespaces and deletes the
// namespaces. It is idempotent: later calls return the first call's result.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for _, n := range l.Namespaces() {
			n.killAll()
		}
		for _, n := range l.Namespaces() {
			if err := deleteNS(ctx, n.Name); err != nil {
				errs = append(errs, err)
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// deleteNS removes the named namespace if it exists. Losing a race with
// another remover (a concurrent sweep) is not an error.
func deleteNS(ctx context.Context, name string) error {
	gone := func() bool {
		_, err := os.Stat("/run/netns/" + name)
		return errors.Is(err, os.ErrNotExist)
	}
	if gone() {
		return nil
	}
	if _, err := ipOut(ctx, "netns", "delete", name); err != nil && !gone() {
		return err
	}
	return nil
}

// SweepStale deletes lab namespaces ("gwdlab-<pid>-...") whose creating
// process is no longer alive, after SIGKILLing (by pid) any process still
// running inside them. New calls it; namespaces of live processes, including
// this one, are left alone.
func SweepStale(ctx context.Context) error {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("netlab: sweep: %w", err)
	}
	var errs []error
	for _, e := range ents {
		pid, ok := labPid(e.Name())
		if !ok || pid == os.Getpid() || pidAlive(pid) {
			continue
		}
		if out, err := ipOut(ctx, "netns", "pids", e.Name()); err == nil {
			for _, f := range strings.Fields(out) {
				if p, err := strconv.Atoi(f); err == nil && p > 1 {
					_ = killPid(p)
				}
			}
		}
		if err := deleteNS(ctx, e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("netlab: sweep stale %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// labPid extracts the creator pid from a lab namespace name.
func labPid(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(pidStr)
	return pid, err == nil && pid > 0
}

// pidAlive reports whether a process with this pid exists.
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
