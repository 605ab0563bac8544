package gateway

import (
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// addrStripes is how many locks order Learn and Forbid per address: only
// calls for the same address must wait for each other, and with 64 stripes
// concurrent DNS answers for different addresses rarely share one.
const addrStripes = 64

// maxForbidden bounds the addresses kept off the fast path. When that many
// are live, Learn withholds every address (flows go through user space)
// until some expire: it never forgets one early.
const maxForbidden = 65536

// Learn adds addr, which DNS just gave for a name every flow of which goes
// direct, to its family's set for ttl clamped to [minLearnTimeout,
// maxLearnTimeout], or refreshes its timeout. Skipped: addresses a static
// prefix holds, and addresses Forbid keeps out. It does nothing before
// Setup or after Teardown, and never fails: a full set or a kernel error
// is counted (and logged once per burst), and the flows go through user
// space as before.
func (p *FastPath) Learn(addr netip.Addr, ttl time.Duration) {
	addr, f, ok := fastPathAddr(addr)
	if !ok {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.on[f] {
		return
	}
	if p.static.contains(addr) {
		p.c.covered.Add(1)
		return
	}
	stripe := p.stripe(addr)
	stripe.Lock()
	defer stripe.Unlock()
	now := p.now()
	if !p.book.mayLearn(addr, now) {
		p.c.withheld.Add(1)
		return
	}
	timeout := clampLearn(ttl)
	pr := netip.PrefixFrom(addr, addr.BitLen())
	if err := p.sets.Add(DirectSet(f), pr, timeout); err != nil {
		p.failed("cannot add a learned address; its flows go through user space", addr, err)
		return
	}
	if !p.book.learn(addr, now.Add(timeout), now) {
		// Not remembered, so Forbid could not withdraw it: take it out.
		if err := p.sets.Delete(DirectSet(f), pr); err != nil {
			p.failed("cannot remove an untracked learned address", addr, err)
		}
		return
	}
	p.c.learned.Add(1)
}

// Forbid keeps addr off the fast path for ttl clamped like Learn's: DNS
// just gave it for a name whose flows do not all go direct, so flows to it
// must meet the rules in user space even when a name that goes direct
// resolves to it too (a shared CDN address). A learned entry for addr is
// removed at once; a static prefix that holds addr stays (the rules send
// every flow to it direct, whatever the name).
func (p *FastPath) Forbid(addr netip.Addr, ttl time.Duration) {
	addr, f, ok := fastPathAddr(addr)
	if !ok {
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	stripe := p.stripe(addr)
	stripe.Lock()
	defer stripe.Unlock()
	now := p.now()
	if !p.book.forbid(addr, now.Add(clampLearn(ttl)), now) || !p.on[f] {
		return
	}
	if err := p.sets.Delete(DirectSet(f), netip.PrefixFrom(addr, addr.BitLen())); err != nil {
		p.failed("cannot withdraw a learned address", addr, err)
		return
	}
	p.c.withdrawn.Add(1)
}

// fastPathAddr normalizes a DNS answer address; ok is false for addresses
// that are no destination.
func fastPathAddr(addr netip.Addr) (netip.Addr, Family, bool) {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() {
		return addr, 0, false
	}
	if addr.Is4() {
		return addr, IPv4, true
	}
	return addr, IPv6, true
}

func clampLearn(ttl time.Duration) time.Duration {
	return min(max(ttl, minLearnTimeout), maxLearnTimeout)
}

func (p *FastPath) stripe(addr netip.Addr) *sync.Mutex {
	return &p.stripes[maphash.Comparable(p.seed, addr)%addrStripes]
}

// failed counts a kernel failure and logs the 1st, 2nd, 4th, 8th...: a
// full set fails every Learn until entries expire.
func (p *FastPath) failed(msg string, addr netip.Addr, err error) {
	if n := p.c.failed.Add(1); bits.OnesCount64(n) == 1 {
		p.log.Warn("kernel fast path: "+msg, "addr", addr, "failures", n, "err", err)
	}
}

// addrBook is what DNS taught about single addresses: the learned entries
// in the sets, and the addresses kept out, each until when.
type addrBook struct {
	mu        sync.Mutex
	learned   expiryMap
	forbidden expiryMap
}

func newAddrBook(maxLearned, maxForbidden int) addrBook {
	return addrBook{
		learned:   expiryMap{m: map[netip.Addr]time.Time{}, limit: maxLearned},
		forbidden: expiryMap{m: map[netip.Addr]time.Time{}, limit: maxForbidden},
	}
}

// mayLearn reports whether addr may enter a set: it is not kept out, and
// the book can still keep addresses out.
func (b *addrBook) mayLearn(addr netip.Addr, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.forbidden.live(addr, now) && !b.forbidden.full(now)
}

// learn remembers that addr is in a set until until; false when the book
// is full of live entries.
func (b *addrBook) learn(addr netip.Addr, until, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.learned.put(addr, until, now)
}

// forbid keeps addr out until until (or longer, if it already was) and
// reports whether it was a live learned entry, which the caller removes
// from its set.
func (b *addrBook) forbid(addr netip.Addr, until, now time.Time) (wasLearned bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.forbidden.m[addr]; ok && t.After(until) {
		until = t
	}
	b.forbidden.put(addr, until, now) // when full, mayLearn refuses everything instead
	wasLearned = b.learned.live(addr, now)
	delete(b.learned.m, addr)
	return wasLearned
}

// forgetLearned drops the learned entries (their sets are gone); what is
// kept out stays true.
func (b *addrBook) forgetLearned() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.learned.m)
}

// expiryMap maps addresses to expiry times, holding at most limit
// entries; expired ones are dropped when room is needed.
type expiryMap struct {
	m     map[netip.Addr]time.Time
	limit int
	// nextPrune: no entry expires before it, so a prune before then
	// would free nothing (a full map of live entries is not rescanned on
	// every call).
	nextPrune time.Time
}

func (e *expiryMap) live(addr netip.Addr, now time.Time) bool {
	t, ok := e.m[addr]
	return ok && now.Before(t)
}

// full reports whether the map holds limit live entries.
func (e *expiryMap) full(now time.Time) bool {
	if len(e.m) < e.limit {
		return false
	}
	e.prune(now)
	return len(e.m) >= e.limit
}

// put sets addr's expiry; false when the map is full of live entries.
func (e *expiryMap) put(addr netip.Addr, until, now time.Time) bool {
	if _, ok := e.m[addr]; !ok && e.full(now) {
		return false
	}
	e.m[addr] = until
	if until.Before(e.nextPrune) {
		e.nextPrune = until
	}
	return true
}

func (e *expiryMap) prune(now time.Time) {
	if now.Before(e.nextPrune) {
		return
	}
	var next time.Time
	for a, t := range e.m {
		switch {
		case !now.Before(t):
			delete(e.m, a)
		case next.IsZero() || t.Before(next):
			next = t
		}
	}
	e.nextPrune = next
}
