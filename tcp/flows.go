package tcp

import (
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// FlowInfo is one active flow as Flows lists it.
type FlowInfo struct {
	Client netip.AddrPort // unmapped
	Dst    netip.AddrPort // the original destination, unmapped
	// Domain is the server name sniffed from the flow's first bytes (with
	// Config.Sniff); "" if none, or while the flow is still being
	// sniffed and dialed.
	Domain string
	// Route is how the flow left, as a RouteDialer named it (the
	// outbound); "" for other Dialers or while dialing.
	Route string
	Start time.Time
	// Connected is false while the upstream is still being dialed.
	Connected bool
	// BytesUp and BytesDown are the bytes so far, from the kernel's
	// TCP_INFO of the client's socket: received from the client
	// (tcpi_bytes_received) and sent to the client and acknowledged by it
	// (tcpi_bytes_acked). They count what the socket saw, so bytes the
	// relay has yet to pass on are already in; the relay's own count
	// (Stats) is added when the flow ends. Both are 0 on kernels too old
	// to report those fields (they came with Linux 4.x) and for a socket
	// closed while the list was made.
	BytesUp, BytesDown uint64
}

// activeFlow is what Flows copies out of a flow under the lock.
type activeFlow struct {
	client    *net.TCPConn
	start     time.Time
	domain    string
	route     string
	connected bool
}

// Flows lists the active flows, in no particular order. It costs one
// getsockopt(2) per flow, made after the server's lock is released, so the
// flows keep moving while it runs.
func (s *Server) Flows() []FlowInfo {
	s.mu.Lock()
	active := make([]activeFlow, 0, len(s.flows))
	for f := range s.flows {
		a := activeFlow{client: f.client, start: f.start, connected: f.upstream != nil}
		if a.connected {
			// run writes domain before attach sets upstream under s.mu, so
			// it is safe to read once upstream is seen; before, it may be
			// being written.
			a.domain, a.route = f.domain, f.route
		}
		active = append(active, a)
	}
	s.mu.Unlock()

	out := make([]FlowInfo, len(active))
	for i, a := range active {
		dst, _ := origDst(a.client) // LocalAddr is cached: valid even once closed
		up, down := socketBytes(a.client)
		out[i] = FlowInfo{
			Client:    clientAddr(a.client),
			Dst:       dst,
			Domain:    a.domain,
			Route:     a.route,
			Start:     a.start,
			Connected: a.connected,
			BytesUp:   up,
			BytesDown: down,
		}
	}
	return out
}

// socketBytes returns what the kernel counted on c: bytes received from the
// peer and bytes sent to it that it acknowledged. Zeros when c is closed or
// the kernel does not report them.
func socketBytes(c *net.TCPConn) (received, acked uint64) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0
	}
	var info *unix.TCPInfo
	cerr := rc.Control(func(fd uintptr) {
		info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || err != nil || info == nil {
		return 0, 0
	}
	return info.Bytes_received, info.Bytes_acked
}
