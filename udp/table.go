package udp

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
)

// numShards splits a table so that datagrams of different clients rarely
// contend for the same mutex. A power of two, so a hash maps with a mask.
const numShards = 64

// cacheLine pads shards apart so their mutexes do not share a cache line.
const cacheLine = 64

// Multipliers of the shard hash (64-bit golden ratio and a large odd
// constant from splitmix64): any odd constants with well-mixed bits do.
const (
	hashMul1 = 0x9e3779b97f4a7c15
	hashMul2 = 0xbf58476d1ce4e5b9
)

// entry is what a table holds: something that knows when it was last used,
// as a reading of the server clock (nanoseconds, monotonic).
type entry interface {
	comparable
	lastActive() int64
}

// node is one table slot, linked into its shard's recency list.
type node[K comparable, V entry] struct {
	key        K
	val        V
	listed     int64 // val.lastActive() when the node got its list position
	prev, next *node[K, V]
}

// shard is one lock's worth of a table. Its list runs from the most
// recently listed node (root.next) to the least (root.prev).
type shard[K comparable, V entry] struct {
	mu   sync.Mutex
	m    map[K]*node[K, V]
	root node[K, V]
	_    [cacheLine]byte
}

// table is a sharded map keyed by address:port with approximate
// least-recently-used eviction across all shards.
//
// Activity is recorded by the entries themselves (an atomic timestamp), so
// the per-datagram path takes only its shard's lock for the lookup and never
// reorders lists. Lists are kept in insertion order and fixed up lazily: an
// entry found at a list tail with activity newer than its position is moved
// to the front instead of being evicted ("second chance").
type table[K comparable, V entry] struct {
	seed   uint64
	hash   func(K, uint64) uint64
	n      atomic.Int64
	shards [numShards]shard[K, V]
}

// newTable returns a table whose keys spread over shards by hash.
func newTable[K comparable, V entry](hash func(k K, seed uint64) uint64) *table[K, V] {
	t := &table[K, V]{seed: rand.Uint64(), hash: hash}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.m = make(map[K]*node[K, V])
		sh.root.next, sh.root.prev = &sh.root, &sh.root
	}
	return t
}

// hashAddrPort mixes an address:port (zone ignored) into 64 bits.
func hashAddrPort(ap netip.AddrPort, seed uint64) uint64 {
	b := ap.Addr().As16()
	h := seed ^ uint64(ap.Port())
	h = (h ^ binary.BigEndian.Uint64(b[:8])) * hashMul1
	h = (h ^ binary.BigEndian.Uint64(b[8:])) * hashMul2
	return h ^ h>>31
}

func (t *table[K, V]) shard(k K) *shard[K, V] {
	return &t.shards[t.hash(k, t.seed)&(numShards-1)]
}

// len is the number of entries.
func (t *table[K, V]) len() int { return int(t.n.Load()) }

// get returns the entry for k.
func (t *table[K, V]) get(k K) (V, bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	n, ok := sh.m[k]
	sh.mu.Unlock()
	if !ok {
		var zero V
		return zero, false
	}
	return n.val, true
}

// add inserts v under k unless k is present. It returns the entry now under
// k and whether it is v.
func (t *table[K, V]) add(k K, v V) (V, bool) {
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if n, ok := sh.m[k]; ok {
		return n.val, false
	}
	n := &node[K, V]{key: k, val: v, listed: v.lastActive()}
	sh.m[k] = n
	sh.pushFront(n)
	t.n.Add(1)
	return v, true
}

// remove deletes k if it still holds v.
func (t *table[K, V]) remove(k K, v V) bool {
	sh := t.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n, ok := sh.m[k]
	if !ok || n.val != v {
		return false
	}
	sh.unlink(n)
	t.n.Add(-1)
	return true
}

// popOldest removes and returns the least recently active entry other than
// keep. It looks at the tail of every shard (after giving recently active
// tails a second chance), so its cost is per shard, not per entry.
func (t *table[K, V]) popOldest(keep V) (V, bool) {
	for {
		var (
			best     *node[K, V]
			bestSh   *shard[K, V]
			bestLast int64
		)
		for i := range t.shards {
			sh := &t.shards[i]
			sh.mu.Lock()
			if n := sh.tail(keep); n != nil {
				if last := n.val.lastActive(); best == nil || last < bestLast {
					best, bestSh, bestLast = n, sh, last
				}
			}
			sh.mu.Unlock()
		}
		var zero V
		if best == nil {
			return zero, false
		}
		bestSh.mu.Lock()
		cur, ok := bestSh.m[best.key]
		if ok && cur == best {
			bestSh.unlink(best)
			t.n.Add(-1)
		}
		bestSh.mu.Unlock()
		if ok && cur == best {
			return best.val, true
		}
		// Removed by someone else meanwhile: look again.
	}
}

// expire removes and returns every entry last active before cutoff.
func (t *table[K, V]) expire(cutoff int64) []V {
	var out []V
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for n := sh.root.prev; n != &sh.root; {
			prev := n.prev
			if n.val.lastActive() < cutoff {
				sh.unlink(n)
				t.n.Add(-1)
				out = append(out, n.val)
			}
			n = prev
		}
		sh.mu.Unlock()
	}
	return out
}

// drain removes and returns every entry.
func (t *table[K, V]) drain() []V {
	var out []V
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for n := sh.root.next; n != &sh.root; n = sh.root.next {
			sh.unlink(n)
			t.n.Add(-1)
			out = append(out, n.val)
		}
		sh.mu.Unlock()
	}
	return out
}

// tail returns the shard's eviction candidate other than keep. Tails that
// were active since they were listed move to the front first; the walk is
// bounded by the shard size, so constant activity cannot make it spin.
// Called with sh.mu held.
func (sh *shard[K, V]) tail(keep V) *node[K, V] {
	for range len(sh.m) {
		n := sh.root.prev
		if n == &sh.root {
			return nil
		}
		last := n.val.lastActive()
		if last <= n.listed {
			break
		}
		n.listed = last
		sh.unlinkList(n)
		sh.pushFront(n)
	}
	for n := sh.root.prev; n != &sh.root; n = n.prev {
		if n.val != keep {
			return n
		}
	}
	return nil
}

func (sh *shard[K, V]) pushFront(n *node[K, V]) {
	n.prev, n.next = &sh.root, sh.root.next
	sh.root.next.prev = n
	sh.root.next = n
}

// unlinkList takes n out of the list only.
func (sh *shard[K, V]) unlinkList(n *node[K, V]) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

// unlink takes n out of the list and the map.
func (sh *shard[K, V]) unlink(n *node[K, V]) {
	sh.unlinkList(n)
	delete(sh.m, n.key)
}
