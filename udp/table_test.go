package udp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeEntry is a table entry with a settable clock reading.
type fakeEntry struct {
	id   int
	last atomic.Int64
}

func (e *fakeEntry) lastActive() int64 { return e.last.Load() }

func newFake(id int, last int64) *fakeEntry {
	e := &fakeEntry{id: id}
	e.last.Store(last)
	return e
}

// key returns distinct client addresses, IPv4 and IPv6 alternately.
func key(i int) netip.AddrPort {
	if i%2 == 0 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)}), uint16(i))
	}
	a := netip.MustParseAddr("2001:2::").As16()
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(1+i%60000))
}

// evictTo mirrors the server's admission: add, then evict down to max.
func evictTo[V entry](t *table[netip.AddrPort, V], k netip.AddrPort, v V, max int) (evicted []V) {
	if _, added := t.add(k, v); !added {
		return nil
	}
	for t.len() > max {
		victim, ok := t.popOldest(v)
		if !ok {
			break
		}
		evicted = append(evicted, victim)
	}
	return evicted
}

// A burst of N >> max new entries never leaves more than max, evicts
// exactly the surplus, oldest first, and never the newcomer.
func TestTableEvictionHoldsBound(t *testing.T) {
	const maxEntries, burst = 16, 5000
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	seen := map[int]bool{}
	for i := range burst {
		e := newFake(i, int64(i))
		for _, v := range evictTo(tab, key(i), e, maxEntries) {
			if v == e {
				t.Fatalf("entry %d evicted its own admission", i)
			}
			if seen[v.id] {
				t.Fatalf("entry %d evicted twice", v.id)
			}
			seen[v.id] = true
			// Oldest first: with increasing clocks, exactly i-max.
			if want := i - maxEntries; v.id != want {
				t.Fatalf("admitting %d evicted %d, want the least recent %d", i, v.id, want)
			}
		}
		if n := tab.len(); n > maxEntries {
			t.Fatalf("after %d admissions the table holds %d > %d", i+1, n, maxEntries)
		}
	}
	if len(seen) != burst-maxEntries {
		t.Errorf("evicted %d, want %d", len(seen), burst-maxEntries)
	}
	for i := burst - maxEntries; i < burst; i++ {
		if v, ok := tab.get(key(i)); !ok || v.id != i {
			t.Errorf("recent entry %d missing", i)
		}
	}
}

// Activity recorded only in the entry (as the downstream path does) saves it
// from eviction: second chance.
func TestTableEvictionSparesActiveEntries(t *testing.T) {
	const maxEntries = 8
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	entries := make([]*fakeEntry, maxEntries)
	for i := range entries {
		entries[i] = newFake(i, int64(i))
		evictTo(tab, key(i), entries[i], maxEntries)
	}
	entries[0].last.Store(100) // the oldest by admission is busy now
	entries[1].last.Store(101)
	evicted := evictTo(tab, key(50), newFake(50, 102), maxEntries)
	if len(evicted) != 1 || evicted[0].id != 2 {
		t.Fatalf("evicted %v, want entry 2 (0 and 1 were active)", ids(evicted))
	}
	for _, i := range []int{0, 1} {
		if _, ok := tab.get(key(i)); !ok {
			t.Errorf("active entry %d was evicted", i)
		}
	}
}

func ids(es []*fakeEntry) []int {
	var out []int
	for _, e := range es {
		out = append(out, e.id)
	}
	return out
}

func TestTableMaxOne(t *testing.T) {
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	a, b := newFake(1, 1), newFake(2, 2)
	evictTo(tab, key(1), a, 1)
	if ev := evictTo(tab, key(2), b, 1); len(ev) != 1 || ev[0] != a {
		t.Fatalf("evicted %v, want the first entry", ids(ev))
	}
	if v, ok := tab.get(key(2)); !ok || v != b || tab.len() != 1 {
		t.Fatalf("table after eviction: get = %v, %v; len %d", v, ok, tab.len())
	}
}

func TestTableExpire(t *testing.T) {
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	for i := range 1000 {
		tab.add(key(i), newFake(i, int64(i)))
	}
	gone := tab.expire(600)
	if len(gone) != 600 || tab.len() != 400 {
		t.Fatalf("expire(600) removed %d, left %d; want 600, 400", len(gone), tab.len())
	}
	for _, e := range gone {
		if e.id >= 600 {
			t.Errorf("entry %d (last %d) expired before its time", e.id, e.lastActive())
		}
	}
	for i := range 1000 {
		if _, ok := tab.get(key(i)); ok != (i >= 600) {
			t.Errorf("entry %d present = %v after expiry", i, ok)
		}
	}
	if rest := tab.drain(); len(rest) != 400 || tab.len() != 0 {
		t.Errorf("drain returned %d, left %d", len(rest), tab.len())
	}
}

// Every key lands in exactly one shard, lookups find it there, the keys
// spread over the shards, and add/remove keep the count exact.
func TestTableSharding(t *testing.T) {
	const n = 10000
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	for i := range n {
		if _, added := tab.add(key(i), newFake(i, 0)); !added {
			t.Fatalf("key %d (%s) collided with an earlier one", i, key(i))
		}
	}
	if _, added := tab.add(key(7), newFake(-1, 0)); added {
		t.Error("a duplicate key was added")
	}
	used, total := 0, 0
	for i := range tab.shards {
		sh := &tab.shards[i]
		if len(sh.m) > 0 {
			used++
		}
		total += len(sh.m)
		listed := 0
		for nd := sh.root.next; nd != &sh.root; nd = nd.next {
			listed++
			if tab.shard(nd.key) != sh {
				t.Fatalf("key %s is in shard %d but hashes elsewhere", nd.key, i)
			}
		}
		if listed != len(sh.m) {
			t.Errorf("shard %d lists %d nodes, maps %d", i, listed, len(sh.m))
		}
	}
	if total != n || tab.len() != n {
		t.Errorf("shards hold %d, count says %d, want %d", total, tab.len(), n)
	}
	if used != numShards {
		t.Errorf("%d keys used only %d of %d shards", n, used, numShards)
	}
	for i := range n {
		v, ok := tab.get(key(i))
		if !ok || v.id != i {
			t.Fatalf("get(%s) = %v, %v", key(i), v, ok)
		}
	}
	other := newFake(-1, 0)
	if tab.remove(key(3), other) {
		t.Error("remove of a different value succeeded")
	}
	v, _ := tab.get(key(3))
	if !tab.remove(key(3), v) || tab.remove(key(3), v) || tab.len() != n-1 {
		t.Error("remove is not exact")
	}
}

// Concurrent admissions from several goroutines (listeners) keep the bound
// once they are done, and the count matches the contents.
func TestTableConcurrentAdmission(t *testing.T) {
	const maxEntries, perWorker, workers = 32, 2000, 4
	tab := newTable[netip.AddrPort, *fakeEntry](hashAddrPort)
	var clock atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				id := w*perWorker + i
				evictTo(tab, key(id), newFake(id, clock.Add(1)), maxEntries)
				if _, ok := tab.get(key(id)); ok {
					tab.remove(key(id+1_000_000), nil) // a miss, exercising the lock
				}
			}
		})
	}
	wg.Wait()
	if n := tab.len(); n > maxEntries {
		t.Errorf("table holds %d > %d", n, maxEntries)
	}
	if n, got := tab.len(), len(tab.drain()); got != n || tab.len() != 0 {
		t.Errorf("count said %d, drain found %d and left %d", n, got, tab.len())
	}
}
