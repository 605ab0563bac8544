package tcp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// flow is one client connection and, once dialed, its upstream.
type flow struct {
	client   *net.TCPConn
	upstream *net.TCPConn // set and read under Server.mu
	start    time.Time
	domain   string      // sniffed server name; written before the relay starts
	route    string      // the RouteDialer's name for the way out; written before the relay starts
	killed   atomic.Bool // reset by Shutdown
	relay    atomic.Pointer[relayFlow]
}

// kill resets the flow: through its relay once relayed (which also ends a
// parked flow that no goroutine watches), else both conns directly. up is
// f.upstream as read under Server.mu; kill itself must run without that
// lock, since ending a relay completes the flow.
func (f *flow) kill(up *net.TCPConn) {
	f.killed.Store(true)
	if rf := f.relay.Load(); rf != nil {
		rf.end(reasonShutdown, nil, true)
		return
	}
	reset(f.client)
	if up != nil {
		reset(up)
	}
}

// FDsPerFlow is what a relayed flow holds of the fd budget: its client and
// upstream sockets. Pipes are taken separately, only while data moves.
const FDsPerFlow = 2

// admit admits a freshly accepted client, or resets it at once when
// MaxConns flows are active or the fd budget is spent. It never blocks the
// accept loop.
func (s *Server) admit(c *net.TCPConn) {
	s.stats.accepted.Add(1)
	n := s.stats.active.Add(1)
	if limit := s.cfg.MaxConns; limit > 0 && n > int64(limit) {
		s.stats.active.Add(-1)
		s.stats.rejected.Add(1)
		s.refuse(c, reasonLimit)
		return
	}
	if !s.cfg.FDs.Take(FDsPerFlow) {
		s.stats.active.Add(-1)
		s.stats.fdRefused.Add(1)
		s.refuse(c, reasonFDs)
		return
	}
	f := &flow{client: c, start: time.Now()}
	if !s.track(f) {
		s.stats.active.Add(-1)
		s.cfg.FDs.Give(FDsPerFlow)
		s.logRejected(c, reasonShutdown)
		reset(c)
		return
	}
	go s.handle(f)
}

// refuse resets a client refused at a limit, and says so once per burst.
func (s *Server) refuse(c *net.TCPConn, reason string) {
	s.logRejected(c, reason)
	s.limitLog.note(s.log, reason)
	reset(c)
}

// track registers f unless the server is shutting down.
func (s *Server) track(f *flow) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.flows[f] = struct{}{}
	s.flowWG.Add(1)
	return true
}

// finish unregisters f.
func (s *Server) finish(f *flow) {
	s.mu.Lock()
	delete(s.flows, f)
	s.mu.Unlock()
	s.stats.active.Add(-1)
	s.cfg.FDs.Give(FDsPerFlow)
	s.flowWG.Done()
}

// attach records f's upstream; false if Shutdown is already killing flows.
func (s *Server) attach(f *flow, up *net.TCPConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.forced {
		return false
	}
	f.upstream = up
	return true
}

// handle takes one flow from accept to its relay: guard, sniff, dial. Once
// the relay runs, the goroutine ends; the relay completes the flow.
func (s *Server) handle(f *flow) {
	if dst, res, relayed := s.run(f); !relayed {
		s.complete(f, dst, res)
	}
}

// complete accounts for and logs a flow that ended, and unregisters it.
func (s *Server) complete(f *flow, dst netip.AddrPort, res outcome) {
	if f.killed.Load() {
		res.reason = reasonShutdown
	}
	s.stats.bytesUp.Add(uint64(res.up))
	s.stats.bytesDown.Add(uint64(res.down))
	s.logFlow(f, dst, res)
	s.finish(f)
}

// run dials f's upstream and starts its relay (relayed: the relay completes
// f), or returns why f ended before.
func (s *Server) run(f *flow) (netip.AddrPort, outcome, bool) {
	dst, err := origDst(f.client)
	if err != nil {
		reset(f.client)
		return dst, outcome{reason: reasonNoDst, err: err}, false
	}
	if s.guard.Load().Refuses(dst) {
		s.stats.loopRefused.Add(1)
		reset(f.client)
		return dst, outcome{reason: reasonLoop}, false
	}
	fl := Flow{Client: clientAddr(f.client), Dst: dst}
	var prefix []byte
	route := s.route.Load()
	if route.sniff {
		if prefix, fl.Domain, err = peek(f.client, s.cfg.SniffTimeout); err != nil {
			reset(f.client)
			return dst, outcome{reason: reasonReset, err: err}, false
		}
		f.domain = fl.Domain
	}
	up, err := dialRoute(s.ctx, route.dialer, fl, &f.route)
	if err != nil {
		if !f.killed.Load() {
			s.stats.dialFailed.Add(1)
		}
		reset(f.client)
		return dst, outcome{reason: reasonDial, err: err}, false
	}
	if !s.attach(f, up) {
		reset(up)
		reset(f.client)
		return dst, outcome{reason: reasonShutdown}, false
	}
	if len(prefix) > 0 {
		if _, err := up.Write(prefix); err != nil {
			reset(up)
			reset(f.client)
			return dst, outcome{reason: reasonReset, err: err}, false
		}
	}
	sent := int64(len(prefix))
	rf := s.relays.start(f.client, up, s.cfg.IdleTimeout, func(res outcome) {
		res.up += sent
		s.complete(f, dst, res)
	})
	f.relay.Store(rf)
	if f.killed.Load() { // Shutdown's kill ran before the relay was stored
		rf.end(reasonShutdown, nil, true)
	}
	return dst, outcome{}, true
}

// clientAddr is c's unmapped remote address.
func clientAddr(c *net.TCPConn) netip.AddrPort {
	a, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// dialRoute opens f's upstream with d, and records the route it took when d
// names it.
func dialRoute(ctx context.Context, d Dialer, f Flow, route *string) (*net.TCPConn, error) {
	if rd, ok := d.(RouteDialer); ok {
		c, r, err := rd.DialTCPRoute(ctx, f)
		*route = r
		return c, err
	}
	return d.DialTCP(ctx, f)
}

// reset closes c with an RST instead of a FIN.
func reset(c *net.TCPConn) {
	_ = c.SetLinger(0)
	_ = c.Close()
}

// origDst is the client's original destination: with TPROXY the accepted
// socket's local address. Dual-stack listeners report IPv4 flows as
// ::ffff:a.b.c.d, hence the Unmap.
func origDst(c *net.TCPConn) (netip.AddrPort, error) {
	a, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("reading original destination: local address is %v", c.LocalAddr())
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func (s *Server) logFlow(f *flow, dst netip.AddrPort, res outcome) {
	ctx := context.Background()
	if !s.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := []slog.Attr{
		slog.String("client", addrString(f.client.RemoteAddr())),
		slog.String("dst", dst.String()),
		slog.String("domain", f.domain),
		slog.String("outbound", f.route),
		slog.Int64("up", res.up),
		slog.Int64("down", res.down),
		slog.Duration("duration", time.Since(f.start)),
		slog.String("reason", res.reason),
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("err", res.err.Error()))
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "tcp flow closed", attrs...)
}

func (s *Server) logRejected(c *net.TCPConn, reason string) {
	s.log.LogAttrs(context.Background(), slog.LevelDebug, "tcp flow closed",
		slog.String("client", addrString(c.RemoteAddr())),
		slog.String("dst", dstString(c)),
		slog.String("reason", reason))
}

func dstString(c *net.TCPConn) string {
	if dst, err := origDst(c); err == nil {
		return dst.String()
	}
	return ""
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
