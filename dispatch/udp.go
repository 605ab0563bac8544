package dispatch

import (
	"container/list"
	"net/netip"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/route"
	"github.com/gatewayd/gatewayd/udp"
)

// DefaultFlowCache bounds the UDP flows whose route is remembered.
const DefaultFlowCache = 65536

// flowTTL is how long an idle UDP flow's route is remembered: past the
// relay's session idle timeout (60 s by default), after which the flow is
// new anyway.
const flowTTL = 5 * time.Minute

// quicPort is where QUIC Initials are sniffed for a server name.
const quicPort = 443

// Route implements udp.Router. Without domain rules a datagram is matched
// on its own: the same addresses give the same route. With them, the
// first datagram of a flow decides (its QUIC Initial names the server,
// the rest of the flow does not) and the flow's route is remembered until
// it has been idle for flowTTL. A QUIC flow whose ClientHello spans
// Initials is held (udp.RouteHold) until the name is complete or the
// relay gives up waiting (a nil p).
func (d *Dispatcher) Route(client, dst netip.AddrPort, p []byte) int {
	if d.flows == nil {
		r, _ := d.flow(route.Flow{Proto: route.ProtoUDP, Src: client, Dst: dst})
		return d.checkReject(r)
	}
	key := flowKey{client, dst}
	now := time.Now()
	if r, ok := d.flows.get(key, now); ok {
		return r
	}
	f := route.Flow{Proto: route.ProtoUDP, Src: client, Dst: dst}
	if dst.Port() == quicPort {
		name, hold := d.quic.serverName(key, p)
		if hold {
			return udp.RouteHold // the ClientHello goes on in the next Initial
		}
		f.Domain = name
	}
	r, f := d.flow(f)
	r = d.checkReject(r)
	d.flows.put(key, r, now)
	d.log.Debug("udp flow routed", "client", client, "dst", dst, "domain", f.Domain, "route", r)
	return r
}

func (d *Dispatcher) checkReject(r int) int {
	if d.rejects[r] {
		return udp.RouteReject
	}
	return r
}

type flowKey struct{ client, dst netip.AddrPort }

// flowRoute is a remembered flow, an element of its shard's recency list.
type flowRoute struct {
	key   flowKey
	route int
	seen  time.Time
}

// flowCache remembers UDP flows' routes, in shards to keep the listener
// read loops apart. A full shard forgets its least recently seen flow
// (an idle-expired one if there is any): never a live flow other than
// the oldest, whose later datagrams (no server name in them) would
// otherwise be routed afresh.
type flowCache struct {
	max    int
	shards [flowShards]flowShard
}

const flowShards = 16

// flowShard keeps its flows in a map and in a list ordered by when they
// were last seen, most recent first.
type flowShard struct {
	mu  sync.Mutex
	m   map[flowKey]*list.Element // of *flowRoute
	lru list.List
}

func newFlowCache(size int) *flowCache {
	if size <= 0 {
		size = DefaultFlowCache
	}
	c := &flowCache{max: max(size/flowShards, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[flowKey]*list.Element)
	}
	return c
}

func (c *flowCache) shard(k flowKey) *flowShard {
	return &c.shards[(uint(k.client.Port())^uint(k.dst.Port()))%flowShards]
}

func (c *flowCache) get(k flowKey, now time.Time) (int, bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[k]
	if !ok {
		return 0, false
	}
	fr := e.Value.(*flowRoute)
	if now.Sub(fr.seen) > flowTTL {
		return 0, false
	}
	if now.Sub(fr.seen) > time.Second { // refresh at most once a second
		fr.seen = now
		sh.lru.MoveToFront(e)
	}
	return fr.route, true
}

func (c *flowCache) put(k flowKey, r int, now time.Time) {
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[k]; ok {
		fr := e.Value.(*flowRoute)
		fr.route, fr.seen = r, now
		sh.lru.MoveToFront(e)
		return
	}
	// Idle-expired flows are at the back: drop them, then the oldest
	// live one if the shard is still full.
	for e := sh.lru.Back(); e != nil && now.Sub(e.Value.(*flowRoute).seen) > flowTTL; e = sh.lru.Back() {
		sh.remove(e)
	}
	for len(sh.m) >= c.max {
		sh.remove(sh.lru.Back())
	}
	sh.m[k] = sh.lru.PushFront(&flowRoute{key: k, route: r, seen: now})
}

func (sh *flowShard) remove(e *list.Element) {
	delete(sh.m, e.Value.(*flowRoute).key)
	sh.lru.Remove(e)
}
