package udp

import "net/netip"

// OrigDst decodes the original destination from the control messages of a
// datagram read from a socket with IP_RECVORIGDSTADDR/IPV6_RECVORIGDSTADDR
// (the DNS hijack's listener reads them too).
func OrigDst(oob []byte) (netip.AddrPort, error) { return origDst(oob) }

// OOBSize is the control buffer size OrigDst needs (both families).
func OOBSize() int { return oobSize }
