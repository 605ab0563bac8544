package dns

import (
	"context"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxIdleConns bounds the idle connections kept per TCP/DoT upstream. A
// home router's query rate rarely has more than a few exchanges in flight
// towards one server; bursts beyond this just dial.
const maxIdleConns = 4

// idleConnMax is how long an idle connection is reused. It is kept below
// common server idle timeouts (miekg/dns and CoreDNS close after 8-10 s)
// so a pooled connection is usually still open when it is taken.
const idleConnMax = 5 * time.Second

// connPool keeps idle connections of one upstream, newest last. One
// exchange uses a connection at a time (no pipelining).
type connPool struct {
	mu     sync.Mutex
	idle   []idleConn
	closed bool
}

type idleConn struct {
	co    *dns.Conn
	since time.Time
}

// get returns the newest idle connection still young enough, or dials a
// new one. reused tells which.
func (p *connPool) get(ctx context.Context, c *dns.Client, addr string) (co *dns.Conn, reused bool, err error) {
	now := time.Now()
	var stale []*dns.Conn
	p.mu.Lock()
	for len(p.idle) > 0 && co == nil {
		ic := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(ic.since) < idleConnMax {
			co = ic.co
		} else {
			stale = append(stale, ic.co)
		}
	}
	p.mu.Unlock()
	for _, s := range stale {
		_ = s.Close()
	}
	if co != nil {
		return co, true, nil
	}
	co, err = c.DialContext(ctx, addr)
	return co, false, err
}

// put returns a connection after a successful exchange.
func (p *connPool) put(co *dns.Conn) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < maxIdleConns {
		p.idle = append(p.idle, idleConn{co: co, since: time.Now()})
		co = nil
	}
	p.mu.Unlock()
	if co != nil {
		_ = co.Close()
	}
}

// close closes the idle connections; connections in use are closed when
// they come back.
func (p *connPool) close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, ic := range idle {
		_ = ic.co.Close()
	}
	return nil
}
