package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Kernel change notifications for the keeper, read from two netlink
// sockets of gatewayd's network namespace:
//
//   - NETLINK_ROUTE, groups RTNLGRP_IPV4_RULE/IPV6_RULE (ip rules),
//     IPV4_ROUTE/IPV6_ROUTE (routes; only those of gatewayd's table
//     count), LINK and IPV4_IFADDR/IPV6_IFADDR (the LAN's addresses);
//   - NETLINK_NETFILTER, group NFNLGRP_NFTABLES: every committed nftables
//     change, which is what iptables-nft makes; only the "mangle" tables
//     of the ip/ip6 families count. Legacy iptables (x_tables) sends
//     nothing, so KernelEvents covers mangle only when the family's
//     iptables is the nf_tables one.
//
// vishvananda/netlink v1.3.1 has no rule subscription, hence the raw
// sockets. A receive buffer overrun (ENOBUFS: events were lost) counts as
// an event: the keeper then checks everything anyway.

// kernelEventBuffer is the receive buffer asked for each socket: a flush
// of a mangle table with a few hundred rules sends one message per rule.
const kernelEventBuffer = 1 << 20

// nfprotoIPv4 and nfprotoIPv6 are the nfgenmsg families of ip and ip6
// nftables tables (NFPROTO_IPV4, NFPROTO_IPV6).
const (
	nfprotoIPv4 = 2
	nfprotoIPv6 = 10
)

// sizeofNfgenmsg is struct nfgenmsg (family, version, res_id), which
// starts every nfnetlink message's body.
const sizeofNfgenmsg = 4

// nlaTypeMask strips NLA_F_NESTED and NLA_F_NET_BYTEORDER off an attribute
// type.
const nlaTypeMask = 0x3fff

// nftDestroyTable..nftDestroyRule are NFT_MSG_DESTROY* (Linux 6.3+;
// x/sys/unix lacks them): a destroy is announced under its own type.
const (
	nftDestroyTable = 0x1a
	nftDestroyChain = 0x1b
	nftDestroyRule  = 0x1c
)

// KernelEvents returns the real Gateway.Events: it subscribes in the
// calling thread's network namespace; log gets subscription failures.
func KernelEvents(log *slog.Logger) func(ctx context.Context, spec WatchSpec) Watch {
	return func(ctx context.Context, spec WatchSpec) Watch {
		out := make(chan struct{}, 1)
		notify := func() {
			select {
			case out <- struct{}{}:
			default: // one pending event is enough
			}
		}
		var routing atomic.Bool
		mangle := map[Family]*atomic.Bool{}
		lost := func(what string, flag *atomic.Bool) func(error) {
			return func(err error) {
				flag.Store(false)
				notify() // what happened meanwhile is unknown: check
				if ctx.Err() == nil {
					log.Warn("self-healing: change notifications failed; checking periodically", "what", what, "err", err)
				}
			}
		}
		if s, err := openNetlink(unix.NETLINK_ROUTE, routeGroups); err != nil {
			log.Warn("self-healing: no routing change notifications; checking periodically", "err", err)
		} else {
			routing.Store(true)
			go s.read(ctx, func(m []byte) bool { return routeEventMatters(m, spec) }, notify,
				lost("routing", &routing))
		}
		var nftFams []Family
		for _, f := range spec.Families {
			mangle[f] = new(atomic.Bool)
			if nft, err := iptablesIsNFT(f); err != nil || !nft {
				log.Debug("mangle table changes are not notified (legacy iptables)", "family", f.String(), "err", err)
				continue
			}
			nftFams = append(nftFams, f)
		}
		if len(nftFams) > 0 {
			if s, err := openNetlink(unix.NETLINK_NETFILTER, []int{unix.NFNLGRP_NFTABLES}); err != nil {
				log.Warn("self-healing: no nftables change notifications; checking the mangle table periodically", "err", err)
			} else {
				all := new(atomic.Bool)
				all.Store(true)
				for _, f := range nftFams {
					mangle[f] = all
				}
				go s.read(ctx, func(m []byte) bool { return nftEventMatters(m, nftFams) }, notify,
					lost("mangle table", all))
			}
		}
		return Watch{C: out, Covered: func() Coverage {
			c := Coverage{Routing: routing.Load(), Mangle: map[Family]bool{}}
			for f, b := range mangle {
				c.Mangle[f] = b.Load()
			}
			return c
		}}
	}
}

// routeGroups are the NETLINK_ROUTE groups the keeper listens to.
var routeGroups = []int{
	unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE,
	unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
	unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
}

// iptablesIsNFT reports whether family f's iptables in PATH is the
// nf_tables one ("iptables v1.8.9 (nf_tables)"), as NewTables uses.
func iptablesIsNFT(f Family) (bool, error) {
	bin := "iptables"
	if f == IPv6 {
		bin = "ip6tables"
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return false, fmt.Errorf("%s --version: %w", bin, err)
	}
	return strings.Contains(string(out), "nf_tables"), nil
}

// nlSocket is a netlink socket joined to multicast groups, read through
// Go's poller so that closing it ends a blocked read.
type nlSocket struct{ f *os.File }

func openNetlink(proto int, groups []int) (*nlSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		return nil, fmt.Errorf("opening netlink socket %d: %w", proto, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding netlink socket %d: %w", proto, err)
	}
	for _, g := range groups {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("joining netlink group %d of socket %d: %w", g, proto, err)
		}
	}
	// Privileged callers may exceed rmem_max; otherwise take what is allowed.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, kernelEventBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, kernelEventBuffer)
	}
	return &nlSocket{f: os.NewFile(uintptr(fd), fmt.Sprintf("netlink-%d", proto))}, nil
}

// read calls notify for every datagram holding a message that matters
// (and for an overrun), until ctx is done; another error ends it through
// failed.
func (s *nlSocket) read(ctx context.Context, matters func(msg []byte) bool, notify func(), failed func(error)) {
	stop := context.AfterFunc(ctx, func() { s.f.Close() })
	defer stop()
	rc, err := s.f.SyscallConn()
	if err != nil {
		failed(err)
		return
	}
	buf := make([]byte, 1<<16)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, unix.ENOBUFS): // events were lost
			notify()
			continue
		case err != nil:
			failed(err)
			s.f.Close()
			return
		}
		if datagramMatters(buf[:n], matters) {
			notify()
		}
	}
}

// datagramMatters reports whether one of the netlink messages in b
// matters; a datagram that does not parse does (better one check too many).
func datagramMatters(b []byte, matters func(msg []byte) bool) bool {
	for len(b) > 0 {
		if len(b) < unix.SizeofNlMsghdr {
			return true
		}
		n := int(binary.NativeEndian.Uint32(b[0:4]))
		if n < unix.SizeofNlMsghdr || n > len(b) {
			return true
		}
		if matters(b[:n]) {
			return true
		}
		n = (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if n >= len(b) {
			return false
		}
		b = b[n:]
	}
	return false
}

// routeEventMatters reports whether a NETLINK_ROUTE notification (header
// included) may concern the rules of spec: any link or address change, an
// ip rule of its table or priority, a route in its table.
func routeEventMatters(msg []byte, spec WatchSpec) bool {
	typ, body, ok := splitMsg(msg)
	if !ok {
		return true
	}
	switch typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK, unix.RTM_NEWADDR, unix.RTM_DELADDR:
		return true
	case unix.RTM_NEWRULE, unix.RTM_DELRULE, unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
	default:
		return false
	}
	// struct rtmsg and struct fib_rule_hdr are both 12 bytes with the
	// table (if < 256) at offset 4; a table ≥ 256 comes as RTA_TABLE /
	// FRA_TABLE (both 15).
	if len(body) < unix.SizeofRtMsg {
		return true
	}
	table, prio := int(body[4]), -1
	forEachAttr(body[unix.SizeofRtMsg:], func(t uint16, v []byte) {
		switch {
		case t == unix.RTA_TABLE && len(v) >= 4:
			table = int(binary.NativeEndian.Uint32(v))
		case t == unix.FRA_PRIORITY && len(v) >= 4 && (typ == unix.RTM_NEWRULE || typ == unix.RTM_DELRULE):
			prio = int(binary.NativeEndian.Uint32(v))
		}
	})
	return table == spec.Table || prio == spec.Priority
}

// nftEventMatters reports whether an nftables notification (header
// included) changes a mangle table of one of fams: a table, chain or rule
// added, deleted or destroyed there.
func nftEventMatters(msg []byte, fams []Family) bool {
	typ, body, ok := splitMsg(msg)
	if !ok {
		return true
	}
	if typ>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return false
	}
	switch typ & 0xff {
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, nftDestroyTable,
		unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN, nftDestroyChain,
		unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE, nftDestroyRule:
	default:
		return false
	}
	if len(body) < sizeofNfgenmsg {
		return true
	}
	fam := Family(0)
	switch body[0] {
	case nfprotoIPv4:
		fam = IPv4
	case nfprotoIPv6:
		fam = IPv6
	}
	watched := false
	for _, f := range fams {
		watched = watched || f == fam
	}
	if !watched {
		return false
	}
	// NFTA_TABLE_NAME, NFTA_CHAIN_TABLE and NFTA_RULE_TABLE are all 1.
	table := ""
	forEachAttr(body[sizeofNfgenmsg:], func(t uint16, v []byte) {
		if t == 1 {
			table = strings.TrimRight(string(v), "\x00")
		}
	})
	return table == "mangle"
}

// splitMsg splits a netlink message into its type and body.
func splitMsg(msg []byte) (typ uint16, body []byte, ok bool) {
	if len(msg) < unix.SizeofNlMsghdr {
		return 0, nil, false
	}
	n := int(binary.NativeEndian.Uint32(msg[0:4]))
	if n < unix.SizeofNlMsghdr || n > len(msg) {
		return 0, nil, false
	}
	return binary.NativeEndian.Uint16(msg[4:6]), msg[unix.SizeofNlMsghdr:n], true
}

// forEachAttr calls fn with the type (flags masked off) and value of each
// netlink attribute in b.
func forEachAttr(b []byte, fn func(typ uint16, val []byte)) {
	for len(b) >= unix.SizeofNlAttr {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < unix.SizeofNlAttr || n > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:4])&nlaTypeMask, b[unix.SizeofNlAttr:n])
		n = (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1)
		if n > len(b) {
			return
		}
		b = b[n:]
	}
}
