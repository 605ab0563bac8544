package dashboard

import (
	"net/netip"
)

// clientName is what is known of a LAN address: its MAC and host name.
type clientName struct {
	MAC      string
	Hostname string
}

// namer names LAN clients from the DHCP leases, the [dns.hosts] entries
// and the neighbour table, in that order of preference for the host name
// (the neighbour table's MAC wins: it is live).
type namer struct {
	leases map[netip.Addr]Lease
	hosts  map[netip.Addr]string
	mac    func(netip.Addr) string
}

func (n namer) name(a netip.Addr) clientName {
	a = a.Unmap()
	var c clientName
	if l, ok := n.leases[a]; ok {
		c = clientName(l)
	}
	if c.Hostname == "" {
		c.Hostname = n.hosts[a]
	}
	if n.mac != nil {
		if m := n.mac(a); m != "" {
			c.MAC = m
		}
	}
	return c
}
