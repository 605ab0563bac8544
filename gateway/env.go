package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/gatewayd/gatewayd/internal/lan"
	"github.com/vishvananda/netlink"
)

// DeriveEnv reads the LAN interfaces' connected subnets from the kernel. A
// LAN interface that does not exist (yet) is logged and skipped: its
// traffic cannot arrive, and the jump for it is installed anyway.
func DeriveEnv(nl Netlink, c *Spec, log *slog.Logger) (Env, error) {
	links, err := lanLinks(nl, c.LAN.Interfaces, log)
	if err != nil {
		return Env{}, err
	}
	var env Env
	for _, l := range links {
		addrs, err := nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return Env{}, fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, ad := range addrs {
			ip, ok := netip.AddrFromSlice(ad.IPNet.IP)
			if !ok {
				continue
			}
			ones, _ := ad.IPNet.Mask.Size()
			ip = ip.Unmap()
			env.LANSubnets = append(env.LANSubnets, netip.PrefixFrom(ip, ones).Masked())
		}
	}
	return env, nil
}

// lanLinks resolves configured names ("lan+" is an iptables-style wildcard)
// to links.
func lanLinks(nl Netlink, names []string, log *slog.Logger) ([]netlink.Link, error) {
	var out []netlink.Link
	var all []netlink.Link
	for _, name := range names {
		if strings.HasSuffix(name, lan.Wildcard) {
			if all == nil {
				var err error
				if all, err = nl.LinkList(); err != nil {
					return nil, fmt.Errorf("listing links: %w", err)
				}
			}
			for _, l := range all {
				if lan.Matches(name, l.Attrs().Name) {
					out = append(out, l)
				}
			}
			continue
		}
		l, err := nl.LinkByName(name)
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			log.Warn("LAN interface not found; its subnets are not known yet", "interface", name)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("finding LAN interface %s: %w", name, err)
		}
		out = append(out, l)
	}
	return out, nil
}
