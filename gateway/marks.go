package gateway

// Firewall marks, routing table and rule priority.
//
// gatewayd uses two single-bit marks, both configurable, which must never
// share a bit (a shared bit would send gatewayd's own outbound packets into
// its local-delivery table: connect fails with "network is unreachable"):
//
//   - the TPROXY mark (bit 24, 0x01000000): set by the TPROXY target and the
//     DIVERT chain on intercepted packets; the fwmark rule below sends
//     packets carrying it to DefaultTable, which delivers everything locally.
//   - the bypass mark (bit 25, 0x02000000): set with SO_MARK on every socket
//     gatewayd opens towards the outside, so its own traffic is never
//     intercepted again.
//
// Bits 24-25 stay clear of the marks common router software uses: OpenWrt
// mwan3 (0x3f00), Kubernetes (0x4000, 0x8000), tailscale (0xff0000 mask).
//
// DefaultTable is a routing table number no OpenWrt or Debian component
// claims; it holds one route per family, `local default dev lo`.
// DefaultPriority puts the fwmark rule before `main` (32766) with room on
// both sides; mwan3 uses 1001-2254, tailscale 5210-5270.
const (
	DefaultTProxyMark uint32 = 0x01000000
	DefaultBypassMark uint32 = 0x02000000
	DefaultTable             = 2026
	DefaultPriority          = 9000
)
