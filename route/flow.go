package route

import (
	"net"
	"net/netip"
)

// Protocols a Flow can carry and a rule can require.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Flow is what the relays know about a new flow when they ask for its
// outbound.
type Flow struct {
	Proto string         // ProtoTCP or ProtoUDP
	Src   netip.AddrPort // LAN client (IPv4-mapped addresses are unmapped)
	Dst   netip.AddrPort // original destination
	// MAC is the client's MAC address (from lan.Neighbors), nil when unknown.
	MAC net.HardwareAddr
	// Iface is the LAN interface the flow came in on, "" when unknown.
	Iface string
	// Domain is the name the client asked for, from the DNS domain memory or
	// a sniffed TLS SNI / HTTP Host; "" when unknown. Any case, with or
	// without a trailing dot.
	Domain string
}
