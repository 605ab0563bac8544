// Package netlab builds a throw-away three-namespace network lab,
//
//	client (eth0) <-veth-> (lan0 in br-lan) gateway (wan0) <-veth-> (eth0) server
//
// for gatewayd's tests, demos and benchmark drivers. The core API (New,
// Lab.Close, NS, Proc) does not need a testing.TB; NewT, Require and Gatewayd
// are thin wrappers for tests.
//
// Addressing (only 198.18.0.0/15 and 2001:2::/48 are ever used):
//
//	client  eth0    198.18.1.2/24  2001:2:1::2/64   default via the gateway's br-lan
//	gateway br-lan  198.18.1.1/24  2001:2:1::1/64   bridge (stp off, forward_delay 0), port lan0
//	gateway wan0    198.18.2.1/24  2001:2:2::1/64   198.19.0.0/16 and 2001:2:ff::/64 via the server
//	server  eth0    198.18.2.2/24  2001:2:2::2/64   default via the gateway's wan0
//	server  lo      198.19.0.10-12/32, 2001:2:ff::10-12/128  (the "remote hosts", Lab.Remotes)
//
// The gateway forwards (net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=1)
// and there is no NAT anywhere, so the server sees the client's own address.
// IPv6 addresses are added with nodad, so they are usable at once. veth
// offloads are left at their defaults. Interface names are exported as
// ClientIf, LANBridge, LANPort, WANIf and ServerIf.
//
// Two details make New fast (about 0.3s) and deterministic; without them the
// first IPv6 packets lose one or two 1s neighbour-discovery retransmits:
//   - net.ipv6.conf.{all,default}.accept_dad=0 is set in every lab namespace
//     before links exist, so link-local addresses are not tentative. The
//     gateway sources neighbour solicitations for forwarded packets from the
//     link-local address and sends none while it is tentative.
//   - New polls each link with a single-device `ip link show dev X` until it
//     is up. That request also flushes the device's pending link-watch
//     event; the bridge's carrier-on event is otherwise processed up to 1s
//     late, and until then IPv6 on br-lan ignores neighbour solicitations.
//
// Safety: every command runs either with `ip -n NS`/`ip netns exec NS` or on
// a thread switched into a lab namespace (NS.Do); the host namespace's links,
// routes, iptables and sysctls are never touched. Veth pairs are created with
// both ends directly inside lab namespaces, so no device ever appears in the
// host namespace.
//
// Lifetime: namespaces are named "gwdlab-<pid>-<n>-<rand>-<role>" where pid
// is the creating process. Lab.Close kills the processes started with
// NS.Start and deletes the three namespaces. New first sweeps lab namespaces
// whose creating pid is no longer alive (SIGKILLing any processes still in
// them, by pid) so a crashed run does not leak. Processes started with
// NS.Start also get PR_SET_PDEATHSIG=SIGKILL and their own process group.
//
// Differences from the original brief, on purpose:
//   - LANSubnet/WANSubnet use the named type Prefixes (same fields V4, V6).
//   - The setup reachability check sends ICMP echo requests from Go over raw
//     sockets in the client namespace instead of running ping(8), so the
//     package does not depend on iputils being installed (it is not on every
//     image; it is not on the development machine). It retries for about
//     three seconds per family.
//   - Require also checks for sysctl(8), which New needs, and for
//     ip6tables-restore, iptables-save and ip6tables-save.
//   - Missing reports the unmet prerequisites for non-test programs.
//   - Extras: NS.Ping, Proc.Pid, Proc.Done, Lab.ID, Lab.Namespaces,
//     SweepStale, NamePrefix and the interface-name constants.
//
// Caveats: a socket created with NS.Do that is still open after Close keeps
// the (now unnamed) namespace alive until the socket is closed. The stale
// sweep decides liveness with kill(pid, 0), so processes sharing /run/netns
// must share a PID namespace.
package netlab
