package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/listen"
	"github.com/gatewayd/gatewayd/internal/udpio"
)

// Reply socket cache bounds: LAN clients ask few distinct resolver
// addresses (the router, 8.8.8.8, the ISP's...), so a small cache serves
// almost every answer from an open socket.
const (
	maxReplySockets = 256
	replyIdle       = 2 * time.Minute
)

// replySockets caches one transparent socket per queried resolver address
// (dst:53), from which UDP answers are sent.
type replySockets struct {
	mark   uint32
	mu     sync.Mutex
	m      map[netip.AddrPort]*replySocket
	closed bool // by closeAll: a late answer opens nothing again
}

// errRepliesClosed: the server has shut down; the answer is dropped.
var errRepliesClosed = errors.New("dns server shut down: reply sockets closed")

type replySocket struct {
	c    *net.UDPConn
	raw  *udpio.Sock // c for batched sends
	used time.Time
}

func newReplySockets(mark uint32) *replySockets {
	return &replySockets{mark: mark, m: map[netip.AddrPort]*replySocket{}}
}

// send sends b to client from src.
func (r *replySockets) send(b []byte, src, client netip.AddrPort) error {
	rs, err := r.socket(src)
	if err != nil {
		return err
	}
	_, err = rs.c.WriteToUDPAddrPort(b, client)
	return err
}

// sender is src's socket for batched sends.
func (r *replySockets) sender(src netip.AddrPort) (*udpio.Sock, error) {
	rs, err := r.socket(src)
	if err != nil {
		return nil, err
	}
	if rs.raw == nil {
		return nil, fmt.Errorf("reply socket %s has no descriptor", src)
	}
	return rs.raw, nil
}

// open is src's socket for batched sends if one is open; it opens none.
func (r *replySockets) open(src netip.AddrPort) (*udpio.Sock, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rs, ok := r.m[src]
	if !ok || r.closed || rs.raw == nil {
		return nil, false
	}
	rs.used = time.Now()
	return rs.raw, true
}

func (r *replySockets) socket(src netip.AddrPort) (*replySocket, error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errRepliesClosed
	}
	if rs, ok := r.m[src]; ok {
		rs.used = now
		return rs, nil
	}
	r.expireLocked(now)
	c, err := listen.ReplySocket(src, r.mark)
	if err != nil {
		return nil, err
	}
	rs := &replySocket{c: c, raw: udpio.NewSock(c), used: now}
	r.m[src] = rs
	return rs, nil
}

// expireLocked closes idle sockets, and the least recently used one when
// the cache is full. Sockets are only closed here, under the lock that get
// holds while handing them out, after replyIdle without use, so a socket
// being written to is never one that is closed.
func (r *replySockets) expireLocked(now time.Time) {
	var oldest netip.AddrPort
	for k, rs := range r.m {
		if now.Sub(rs.used) > replyIdle {
			_ = rs.c.Close()
			delete(r.m, k)
		} else if !oldest.IsValid() || rs.used.Before(r.m[oldest].used) {
			oldest = k
		}
	}
	if len(r.m) >= maxReplySockets && oldest.IsValid() {
		_ = r.m[oldest].c.Close()
		delete(r.m, oldest)
	}
}

// closeAll closes every reply socket, for good: a resolver goroutine that
// outlived Shutdown's grace gets errRepliesClosed instead of opening one
// that nothing would close.
func (r *replySockets) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for k, rs := range r.m {
		_ = rs.c.Close()
		delete(r.m, k)
	}
}
