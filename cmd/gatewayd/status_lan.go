package main

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// lanClients knows the LAN interfaces' subnets (lan.interfaces, "+"
// wildcards included): who may talk to the status endpoint (loopback, and
// addresses inside a LAN subnet) and which LAN interface a client is on
// (rules by interface). The subnets are read from the kernel and cached
// for localRefresh, so a DHCP renewal or a bridge re-created is followed.
// Safe for concurrent use.
type lanClients struct {
	ifaces []string
	// interfaces lists the system's interfaces with their addresses (a
	// test seam); nil: the kernel's, through package net.
	interfaces func() ([]ifaceAddrs, error)

	mu   sync.Mutex
	at   time.Time
	lans []ifaceAddrs   // the LAN interfaces and all their address prefixes
	nets []netip.Prefix // LAN subnets, masked, without link-local ones
	own  []netip.Addr   // the router's LAN addresses, without link-local ones
}

// ifaceAddrs is one interface's name and address prefixes.
type ifaceAddrs struct {
	name  string
	addrs []netip.Prefix
}

func newLANClients(ifaces []string) *lanClients {
	return &lanClients{ifaces: ifaces, interfaces: systemInterfaces}
}

// allowed is status.Config.AllowClient.
func (l *lanClients) allowed(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshLocked()
	for _, p := range l.nets {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// hasAddr reports whether a is one of the router's LAN addresses.
func (l *lanClients) hasAddr(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshLocked()
	for _, o := range l.own {
		if o == a.Unmap() {
			return true
		}
	}
	return false
}

// iface is the LAN interface whose subnet holds a (link-local subnets
// included); "" if none.
func (l *lanClients) iface(a netip.Addr) string {
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshLocked()
	for _, ifc := range l.lans {
		for _, p := range ifc.addrs {
			if p.Masked().Contains(a) {
				return ifc.name
			}
		}
	}
	return ""
}

// refreshLocked re-reads the LAN subnets when the cache is stale. On a
// read error it keeps the last list (empty at first: loopback only).
// Link-local subnets do not let clients in: such a subnet is on every
// link.
func (l *lanClients) refreshLocked() {
	if !l.at.IsZero() && time.Since(l.at) < localRefresh {
		return
	}
	l.at = time.Now()
	all, err := l.interfaces()
	if err != nil {
		return
	}
	l.lans, l.nets, l.own = nil, nil, nil
	for _, ifc := range all {
		if !matchesIface(l.ifaces, ifc.name) {
			continue
		}
		l.lans = append(l.lans, ifc)
		for _, p := range ifc.addrs {
			if p.Addr().IsLinkLocalUnicast() {
				continue
			}
			l.nets = append(l.nets, p.Masked())
			l.own = append(l.own, p.Addr())
		}
	}
}

// matchesIface reports whether name is one of patterns: an exact name, or
// a prefix followed by "+" (iptables' wildcard, as lan.interfaces allows).
func matchesIface(patterns []string, name string) bool {
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "+"); ok {
			if strings.HasPrefix(name, base) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// systemInterfaces reads the interfaces and their addresses from the
// kernel.
func systemInterfaces() ([]ifaceAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]ifaceAddrs, 0, len(ifs))
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // gone meanwhile
		}
		ia := ifaceAddrs{name: ifc.Name}
		for _, ad := range addrs {
			n, ok := ad.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ones, _ := n.Mask.Size()
			ia.addrs = append(ia.addrs, netip.PrefixFrom(ip.Unmap(), ones))
		}
		out = append(out, ia)
	}
	return out, nil
}
