package dashboard

import (
	"net/netip"
	"time"
)

// Source is what the dashboard reads from the running daemon: funcs, so
// that this package depends on none of the relays. A nil func means the
// daemon has no such part (no DNS, no routing policy) and its panel says so.
type Source struct {
	Version string
	Start   time.Time

	Config       func() ConfigInfo
	Interception func() Interception
	Counters     func() Counters
	Flows        func() []Flow
	// LANBytes is the bytes the LAN interfaces received from the clients
	// (rx, "up") and sent to them (tx, "down"): all LAN traffic, the
	// kernel fast path's included. The throughput graph is made of it.
	LANBytes func() (rx, tx uint64, err error)

	// Upstreams are the DNS upstreams' counters; nil without DNS.
	Upstreams func() []Upstream
	// Queries lists the recent queries, newest first, and TopBlocked the
	// most blocked names; both nil when the query log is off.
	Queries    func() []Query
	TopBlocked func(n int) []NameCount

	Rules func() Rules

	// MAC is the MAC address of a LAN address ("" if unknown).
	MAC func(netip.Addr) string
	// HostNames names LAN addresses from the [dns.hosts] entries.
	HostNames map[netip.Addr]string
	// LeasesPath is a DHCP leases file in dnsmasq/OpenWrt format
	// (/tmp/dhcp.leases); "" or a missing file: none.
	LeasesPath string
}
