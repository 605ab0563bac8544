package outbound

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// fallbackLogEvery is the least time between two log lines of one
// Fallback: a dead proxy fails every flow, and one line per burst (with
// the count of those not logged) says as much as thousands.
const fallbackLogEvery = 10 * time.Second

// Fallback is an Outbound that dials through a primary outbound and, when
// that fails (and the caller's context is still live), through a
// secondary one. Its name is the primary's; its Stats count the combined
// outcome, plus Fallbacks.
type Fallback struct {
	base
	primary, secondary Outbound
	log                *slog.Logger
	limit              LogLimiter
}

var _ Outbound = (*Fallback)(nil)

// NewFallback wraps primary with secondary as fallback. Failures of the
// primary are logged on log at Warn, at most once per fallbackLogEvery.
func NewFallback(primary, secondary Outbound, log *slog.Logger) *Fallback {
	return &Fallback{
		base:      base{name: primary.Name()},
		primary:   primary,
		secondary: secondary,
		log:       log,
		limit:     LogLimiter{Every: fallbackLogEvery, Now: time.Now},
	}
}

// DialTCP implements Outbound.
func (f *Fallback) DialTCP(ctx context.Context, dst Dest) (*net.TCPConn, error) {
	f.stats.begin()
	c, err := f.primary.DialTCP(ctx, dst)
	if err == nil || ctx.Err() != nil {
		return c, f.stats.end(err)
	}
	f.noteFailure("tcp", dst.String(), err)
	c, err2 := f.secondary.DialTCP(ctx, dst)
	if err2 != nil {
		err2 = fmt.Errorf("fallback outbound %q: %w (primary: %v)", f.secondary.Name(), err2, err)
	}
	return c, f.stats.end(err2)
}

// OpenUDP implements Outbound. A primary that cannot carry UDP (http)
// counts as failing, so its UDP goes through the fallback.
func (f *Fallback) OpenUDP(ctx context.Context, client netip.AddrPort) (UDPConn, error) {
	f.stats.begin()
	u, err := f.primary.OpenUDP(ctx, client)
	if err == nil || ctx.Err() != nil {
		return u, f.stats.end(err)
	}
	f.noteFailure("udp", client.String(), err)
	u, err2 := f.secondary.OpenUDP(ctx, client)
	if err2 != nil {
		return nil, f.stats.end(fmt.Errorf("fallback outbound %q: %w (primary: %v)", f.secondary.Name(), err2, err))
	}
	return u, f.stats.end(nil)
}

// noteFailure counts a fallback and logs the primary's failure, rate
// limited. flow names the flow: the destination (tcp) or client (udp).
func (f *Fallback) noteFailure(proto, flow string, err error) {
	f.stats.fallbacks.Add(1)
	ok, suppressed := f.limit.Allow()
	if !ok {
		return
	}
	f.log.Warn("outbound failed, using its fallback",
		slog.String("outbound", f.primary.Name()),
		slog.String("fallback", f.secondary.Name()),
		slog.String("proto", proto),
		slog.String("flow", flow),
		slog.String("kind", KindOf(err).String()),
		slog.Any("err", err),
		slog.Uint64("suppressed", suppressed))
}

// LogLimiter lets one event through per interval and counts the others:
// "logged once per burst".
type LogLimiter struct {
	Every time.Duration
	Now   func() time.Time // nil: time.Now

	mu         sync.Mutex
	last       time.Time // of the last event let through
	suppressed uint64    // events held back since then
}

// Allow reports whether an event may be logged now and, if so, how many
// were held back since the last one that was.
func (l *LogLimiter) Allow() (bool, uint64) {
	now := time.Now()
	if l.Now != nil {
		now = l.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.Every {
		l.suppressed++
		return false, 0
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	return true, n
}
