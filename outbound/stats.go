package outbound

import "sync/atomic"

// Stats is a snapshot of one outbound's counters.
//
// Open TCP connections are not counted here: DialTCP hands back a bare
// *net.TCPConn (for splice), so only the relay sees it close and counts it.
type Stats struct {
	Dials     uint64   // DialTCP and OpenUDP calls, whatever their outcome
	Dialing   uint64   // dials in progress now (connect and handshake)
	Failures  Failures // failed dials by kind
	Rejected  uint64   // dials a reject outbound refused (not in Failures)
	Fallbacks uint64   // Fallback only: dials the primary failed and the fallback was tried

	UDPActive  uint64   // SOCKS5 UDP associations open now (direct sockets are not tracked)
	UDPDropped UDPDrops // datagrams from the proxy that were not delivered
}

// Failures counts failed dials by FailureKind.
type Failures struct {
	Refused, Timeout, Unreachable, Auth, Handshake, Proxy uint64
	Canceled, Unsupported, Other                          uint64
}

// Total is the sum of all kinds.
func (f Failures) Total() uint64 {
	return f.Refused + f.Timeout + f.Unreachable + f.Auth + f.Handshake + f.Proxy +
		f.Canceled + f.Unsupported + f.Other
}

// UDPDrops counts datagrams a SOCKS5 UDP relay sent that were dropped.
type UDPDrops struct {
	Fragments uint64 // FRAG != 0: gatewayd does not reassemble SOCKS fragments
	Malformed uint64 // short or invalid SOCKS UDP header, or a domain source
}

// numKinds sizes the failure counters: one per FailureKind.
const numKinds = int(KindUnsupported) + 1

// counters are the live values behind Stats.
type counters struct {
	dials, rejected, fallbacks  atomic.Uint64
	dialing, udpActive          atomic.Int64 // gauges
	failures                    [numKinds]atomic.Uint64
	dropFragment, dropMalformed atomic.Uint64
}

// begin counts a dial starting; the caller must call end with its result.
func (c *counters) begin() {
	c.dials.Add(1)
	c.dialing.Add(1)
}

// end counts the outcome of a dial begun with begin and returns err.
func (c *counters) end(err error) error {
	c.dialing.Add(-1)
	if err == nil {
		return nil
	}
	k := KindOf(err)
	if k == KindRejected {
		c.rejected.Add(1)
		return err
	}
	c.failures[k].Add(1)
	return err
}

// load reads a gauge as unsigned.
func load(v *atomic.Int64) uint64 { return uint64(max(v.Load(), 0)) }

func (c *counters) snapshot() Stats {
	f := func(k FailureKind) uint64 { return c.failures[k].Load() }
	return Stats{
		Dials:     c.dials.Load(),
		Dialing:   load(&c.dialing),
		Rejected:  c.rejected.Load(),
		Fallbacks: c.fallbacks.Load(),
		Failures: Failures{
			Refused:     f(KindRefused),
			Timeout:     f(KindTimeout),
			Unreachable: f(KindUnreachable),
			Auth:        f(KindAuth),
			Handshake:   f(KindHandshake),
			Proxy:       f(KindProxy),
			Canceled:    f(KindCanceled),
			Unsupported: f(KindUnsupported),
			Other:       f(KindOther),
		},
		UDPActive: load(&c.udpActive),
		UDPDropped: UDPDrops{
			Fragments: c.dropFragment.Load(),
			Malformed: c.dropMalformed.Load(),
		},
	}
}

// base is what every outbound shares: its name and counters.
type base struct {
	name  string
	stats counters
}

func (b *base) Name() string { return b.name }

// Stats returns a snapshot of the counters. The fields are read one by
// one, so they need not be mutually consistent while dials are running.
func (b *base) Stats() Stats { return b.stats.snapshot() }
