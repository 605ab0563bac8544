package dns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// failPenalty is how long an upstream that just failed is tried after the
// others: long enough that a dead server does not cost every query a
// timeout, short enough that a recovered primary is back in front soon.
const failPenalty = 30 * time.Second

// ErrNoUpstreams is returned by a Group that has no upstream to try (for
// example, an empty resolv.conf and no static upstreams).
var ErrNoUpstreams = errors.New("no upstream resolvers")

// Group sends a query to its upstreams in order, giving each try its own
// timeout, and moves on to the next upstream on an error, a timeout, a
// SERVFAIL or REFUSED answer, or an answer to a different question.
// Upstreams that failed in the last failPenalty are tried after the others.
type Group struct {
	static  []Upstream
	rc      *ResolvConf // nil: none
	timeout time.Duration
	now     func() time.Time
	stats   *upstreamRegistry

	mu     sync.Mutex
	failed map[string]time.Time // upstream name -> last failure
}

// NewGroup returns a Group that tries ups in order, then the nameservers of
// rc (nil: none). timeout bounds each try; <= 0 means defaultTimeout.
func NewGroup(timeout time.Duration, ups []Upstream, rc *ResolvConf) *Group {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &Group{
		static:  ups,
		rc:      rc,
		timeout: timeout,
		now:     time.Now,
		stats:   new(upstreamRegistry),
		failed:  make(map[string]time.Time),
	}
}

// String lists the upstreams.
func (g *Group) String() string {
	names := make([]string, 0, len(g.static)+1)
	for _, u := range g.static {
		names = append(names, u.String())
	}
	if g.rc != nil {
		names = append(names, "resolv.conf "+g.rc.path)
	}
	return "[" + strings.Join(names, " ") + "]"
}

// Exchange implements Upstream.
func (g *Group) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	ups := g.order()
	if len(ups) == 0 {
		return nil, ErrNoUpstreams
	}
	var errs []error
	for _, u := range ups {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		r, err := g.try(ctx, u, m)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("all %d upstreams failed: %w", len(ups), errors.Join(errs...))
}

// try sends m to u once and judges the answer.
func (g *Group) try(ctx context.Context, u Upstream, m *dns.Msg) (*dns.Msg, error) {
	name := u.String()
	tctx, cancel := context.WithTimeout(ctx, g.timeout)
	start := time.Now()
	r, err := u.Exchange(tctx, m)
	rtt := time.Since(start)
	cancel()
	if err == nil {
		err = checkAnswer(m, r)
	}
	g.stats.get(name).observe(rtt, r != nil, err != nil)
	g.mu.Lock()
	if err != nil {
		g.failed[name] = g.now()
	} else {
		delete(g.failed, name)
	}
	g.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r, nil
}

// checkAnswer rejects answers a Group should not pass on.
func checkAnswer(q, r *dns.Msg) error {
	switch {
	case r == nil:
		return io.ErrUnexpectedEOF
	case r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused:
		return fmt.Errorf("answered %s", dns.RcodeToString[r.Rcode])
	case !r.Response:
		return errors.New("answer without the QR bit")
	case len(r.Question) != 1 || len(q.Question) != 1 ||
		!strings.EqualFold(r.Question[0].Name, q.Question[0].Name) ||
		r.Question[0].Qtype != q.Question[0].Qtype || r.Question[0].Qclass != q.Question[0].Qclass:
		return errors.New("answer to a different question")
	case !repacks(r):
		return errors.New("answer with records that do not survive repacking")
	}
	return nil
}

// repacks reports whether r, packed the way the Handler packs replies,
// unpacks again. miekg/dns reads some records cut short in their RDATA
// (an NSEC3 whose salt is missing) and packs them into bytes no client can
// read.
func repacks(r *dns.Msg) bool {
	c := *r // Pack only sets the extended rcode bits of the OPT record: to what they are
	c.Compress = true
	wire, err := c.Pack()
	return err == nil && new(dns.Msg).Unpack(wire) == nil
}

// order returns the upstreams to try: those without a recent failure in
// configured order, then the recently failed ones, longest ago first.
func (g *Group) order() []Upstream {
	all := g.static
	if g.rc != nil {
		all = append(slices.Clip(all), g.rc.Upstreams()...)
	}
	type failedUp struct {
		u  Upstream
		at time.Time
	}
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Upstream, 0, len(all))
	var bad []failedUp
	for _, u := range all {
		at, failed := g.failed[u.String()]
		if failed && now.Sub(at) < failPenalty {
			bad = append(bad, failedUp{u, at})
			continue
		}
		if failed {
			delete(g.failed, u.String())
		}
		out = append(out, u)
	}
	slices.SortStableFunc(bad, func(a, b failedUp) int { return a.at.Compare(b.at) })
	for _, b := range bad {
		out = append(out, b.u)
	}
	return out
}

// Close closes the idle connections of the group's upstreams.
func (g *Group) Close() error {
	var errs []error
	for _, u := range g.static {
		if c, ok := u.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	if g.rc != nil {
		errs = append(errs, g.rc.Close())
	}
	return errors.Join(errs...)
}
