package sockopt

import (
	"net"
	"time"
)

// TCP keepalive of the relayed flows. gatewayd terminates TCP, so each
// endpoint's own keepalive probes are answered by gatewayd's socket and go
// no further; gatewayd sends its own only where they earn their cost.
const (
	// upstreamKeepIdle: the upstream leg is probed after a minute of
	// silence. That keeps the NAT mappings of the WAN side (carrier-grade
	// NATs drop idle TCP mappings after a few minutes) alive for flows the
	// idle timeout keeps open, and finds a dead server, whose flow then
	// ends with an RST to the client. Go's default, 15 s, would send 600
	// probes a second for 9 000 idle flows.
	upstreamKeepIdle = 60 * time.Second
	// upstreamKeepInterval and upstreamKeepCount: a server silent to 4
	// probes 15 s apart is dead.
	upstreamKeepInterval = 15 * time.Second
	upstreamKeepCount    = 4
)

// UpstreamKeepAlive is the keepalive of an upstream (WAN side)
// connection: set it as net.Dialer.KeepAliveConfig.
func UpstreamKeepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: upstreamKeepIdle, Interval: upstreamKeepInterval, Count: upstreamKeepCount}
}

// NoClientKeepAlive is net.ListenConfig.KeepAlive for the relays' client
// (LAN side) sockets: no probes. A vanished client is found by the idle
// timeout; probes every 15 s (Go's default) would wake sleeping phones and
// cost a timer per idle flow.
const NoClientKeepAlive = -1
