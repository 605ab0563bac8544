package dispatch

import (
	"net/netip"
	"testing"
	"time"
)

// sameShardKeys returns n flow keys that land in one shard of c.
func sameShardKeys(c *flowCache, n int) []flowKey {
	dst := netip.MustParseAddrPort("198.18.9.9:443")
	var keys []flowKey
	for port := uint16(1024); len(keys) < n; port++ {
		k := flowKey{netip.AddrPortFrom(netip.MustParseAddr("198.18.1.10"), port), dst}
		if len(keys) == 0 || c.shard(k) == c.shard(keys[0]) {
			keys = append(keys, k)
		}
	}
	return keys
}

// TestFlowCacheEvictsOldest: a full shard makes room by forgetting its
// least recently seen flow, not every flow: a live QUIC flow keeps its
// route (its later datagrams name no server).
func TestFlowCacheEvictsOldest(t *testing.T) {
	const perShard = 4
	c := newFlowCache(flowShards * perShard)
	keys := sameShardKeys(c, perShard+1)
	t0 := time.Unix(1_000_000, 0)
	for i, k := range keys[:perShard] {
		c.put(k, i+1, t0.Add(time.Duration(i)*time.Second))
	}
	if _, ok := c.get(keys[0], t0.Add(10*time.Second)); !ok { // the first flow is live again
		t.Fatal("flow 0 not remembered")
	}
	c.put(keys[perShard], perShard+1, t0.Add(11*time.Second))
	for i, k := range keys {
		r, ok := c.get(k, t0.Add(12*time.Second))
		switch {
		case i == 1 && ok:
			t.Errorf("flow 1, the least recently seen, still remembered")
		case i != 1 && (!ok || r != i+1):
			t.Errorf("flow %d: route %d, %v; want %d remembered", i, r, ok, i+1)
		}
	}
}

// TestFlowCacheDropsExpiredFirst: idle-expired flows make room before any
// live one is evicted, and a shard never holds more than its share.
func TestFlowCacheDropsExpiredFirst(t *testing.T) {
	const perShard = 3
	c := newFlowCache(flowShards * perShard)
	keys := sameShardKeys(c, 2*perShard)
	t0 := time.Unix(1_000_000, 0)
	for i, k := range keys[:perShard] {
		c.put(k, i+1, t0)
	}
	later := t0.Add(flowTTL + time.Minute)
	for i, k := range keys[perShard:] {
		c.put(k, perShard+i+1, later)
	}
	for i, k := range keys {
		_, ok := c.get(k, later)
		if want := i >= perShard; ok != want {
			t.Errorf("flow %d remembered = %v, want %v", i, ok, want)
		}
	}
	sh := c.shard(keys[0])
	if n := len(sh.m); n > perShard {
		t.Errorf("shard holds %d flows, more than its %d", n, perShard)
	}
}

// BenchmarkRouteNoRules is what every UDP datagram of a config without
// rules pays for going through the dispatcher (one flow path): the
// route lookup of the default outbound.
func BenchmarkRouteNoRules(b *testing.B) {
	d, _ := newTestDispatcher(b, nil, nil)
	dst := netip.MustParseAddrPort("198.19.0.10:5000")
	p := []byte("datagram")
	b.ReportAllocs()
	for b.Loop() {
		if d.Route(client, dst, p) != 0 {
			b.Fatal("not the default route")
		}
	}
}
