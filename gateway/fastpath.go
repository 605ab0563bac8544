package gateway

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/internal/ipset"
)

// The kernel fast path's sets: one hash:net set per family, created with
// timeout support so static entries are permanent and learned ones expire.
// GWD_PRE RETURNs their members before TPROXY (see chainRules).
const (
	DirectSet4 = "gwd_direct4"
	DirectSet6 = "gwd_direct6"
)

// DirectSet is the fast-path set of family f.
func DirectSet(f Family) string {
	if f == IPv6 {
		return DirectSet6
	}
	return DirectSet4
}

// directMaxElem bounds each set (the kernel's default). Full sets of /24s
// and /48s took 2.5 MiB (IPv4) and 3.7 MiB (IPv6) of kernel memory on
// kernel 6.18 (ipset list: "Size in memory"), which a small router can
// spare; what does not fit is relayed in user space.
const directMaxElem = 65536

// Learned entries live as long as the DNS answer that taught them, within
// these bounds.
const (
	// minLearnTimeout: clients and their resolver caches keep using an
	// address past a short TTL, and an entry that expires mid-flow sends
	// the flow's later UDP datagrams into user space.
	minLearnTimeout = 2 * time.Minute
	// maxLearnTimeout: how long an address may bypass the rules after the
	// name moved away from it or the rules changed.
	maxLearnTimeout = 6 * time.Hour
)

func directSetSpec(f Family) string {
	return fmt.Sprintf("%s %s family %s timeout 0 maxelem %d", DirectSet(f), ipset.TypeHashNet, ipset.Family(f), directMaxElem)
}

// FastPath keeps the kernel fast path's ipsets: destinations every flow to
// which would be relayed `direct` anyway, so the kernel forwards those flows
// and they never enter user space. Setup creates the sets (before the rules
// that match them) and makes their permanent entries the static prefixes;
// Learn adds DNS-learned addresses with a timeout, and Forbid keeps out
// (and withdraws) addresses DNS also gave for names that do not go direct;
// Teardown destroys the sets (after the rules are gone). Learn and Forbid
// are safe for concurrent use with everything else.
type FastPath struct {
	sets    *ipset.Sets
	log     *slog.Logger
	maxElem uint32

	// mu orders Learn against Setup and Teardown: Learn holds it shared
	// from the check of on/static to the end of its add, so once Setup
	// has published a static prefix no Learn can turn its permanent entry
	// into a timed one.
	mu     sync.RWMutex
	on     map[Family]bool // families whose set Setup created
	static *prefixIndex

	// Learn and Forbid of one address run one at a time (stripes), so an
	// address forbidden meanwhile never stays in a set.
	now     func() time.Time
	seed    maphash.Seed
	stripes [addrStripes]sync.Mutex
	book    addrBook

	c fastPathCounters
}

// NewFastPath returns a FastPath acting through k.
func NewFastPath(k ipset.Kernel, log *slog.Logger) *FastPath {
	return &FastPath{
		sets: ipset.New(k), log: log, maxElem: directMaxElem,
		// Both families' learned entries share the book.
		now: time.Now, seed: maphash.MakeSeed(), book: newAddrBook(2*directMaxElem, maxForbidden),
	}
}

// FastPathStats is a snapshot of FastPath's counters.
type FastPathStats struct {
	Added     uint64 // static entries Setup added (or made permanent)
	Learned   uint64 // DNS-learned addresses added or refreshed
	Covered   uint64 // learned addresses skipped: a static prefix holds them already
	Withheld  uint64 // learned addresses kept out: DNS also gave them for a name that does not go direct
	Withdrawn uint64 // learned entries removed because DNS gave them for such a name later
	Failed    uint64 // entries not added or removed (set full, kernel error); see the log
}

type fastPathCounters struct {
	added, learned, covered, withheld, withdrawn atomic.Uint64
	missing                                      atomic.Uint64 // static prefixes that did not fit
	failed                                       atomic.Uint64 // Learn and Forbid kernel failures
}

// Stats returns the counters.
func (p *FastPath) Stats() FastPathStats {
	return FastPathStats{
		Added: p.c.added.Load(), Learned: p.c.learned.Load(), Covered: p.c.covered.Load(),
		Withheld: p.c.withheld.Load(), Withdrawn: p.c.withdrawn.Load(),
		Failed: p.c.missing.Load() + p.c.failed.Load(),
	}
}

// Setup creates the sets of families (if missing) and makes their
// permanent entries exactly the static prefixes of those families; learned
// entries stay. Repeatable (a reload calls it again). Static prefixes that
// do not fit are counted and logged, not fatal: their flows are relayed
// direct in user space.
func (p *FastPath) Setup(ctx context.Context, families []Family, static []netip.Prefix) error {
	for _, f := range families {
		set := ipset.Set{Name: DirectSet(f), Family: ipset.Family(f), MaxElem: p.maxElem}
		if err := p.sets.Ensure(set); err != nil {
			return fmt.Errorf("setting up the kernel fast path: %w", err)
		}
	}
	byFamily := p.staticByFamily(static)
	p.mu.Lock()
	p.on = map[Family]bool{}
	for _, f := range families {
		p.on[f] = true
	}
	p.static = newPrefixIndex(append(byFamily[IPv4], byFamily[IPv6]...))
	p.mu.Unlock()
	for _, f := range families {
		res, err := p.sets.Sync(ctx, DirectSet(f), byFamily[f])
		p.c.added.Add(uint64(res.Added))
		if errors.Is(err, ipset.ErrFull) {
			p.c.missing.Add(uint64(res.Missing))
			p.log.Warn("kernel fast path: not every static direct prefix fits in the ipset; the rest are relayed direct in user space",
				"set", DirectSet(f), "missing", res.Missing, "maxelem", p.maxElem)
			continue
		}
		if err != nil {
			return fmt.Errorf("setting up the kernel fast path: %w", err)
		}
		p.log.Debug("kernel fast path set synced", "set", DirectSet(f), "static", len(byFamily[f]),
			"added", res.Added, "removed", res.Removed)
	}
	return nil
}

// staticByFamily splits the static prefixes by family, masked. An
// IPv4-mapped IPv6 prefix has no place in a set (no packet carries such a
// destination) and is left out.
func (p *FastPath) staticByFamily(static []netip.Prefix) map[Family][]netip.Prefix {
	out := map[Family][]netip.Prefix{}
	for _, pr := range static {
		switch {
		case !pr.IsValid():
			p.log.Warn("kernel fast path: ignoring an invalid static prefix", "prefix", pr)
		case pr.Addr().Is4In6():
			p.log.Debug("kernel fast path: IPv4-mapped prefix left to user space", "prefix", pr)
		case pr.Addr().Is4():
			out[IPv4] = append(out[IPv4], pr.Masked())
		default:
			out[IPv6] = append(out[IPv6], pr.Masked())
		}
	}
	return out
}

// Teardown destroys both sets, whatever Setup created, so it also removes
// a crashed run's sets. Call it after the rules that match them are gone:
// the kernel refuses to destroy a referenced set (ipset.ErrInUse). A
// missing set is fine.
func (p *FastPath) Teardown() error {
	p.mu.Lock()
	p.on, p.static = nil, nil
	p.book.forgetLearned()
	p.mu.Unlock()
	var errs []error
	for _, f := range Families {
		if err := p.sets.Destroy(DirectSet(f)); err != nil {
			errs = append(errs, fmt.Errorf("tearing down the kernel fast path: %w", err))
		}
	}
	return errors.Join(errs...)
}

// prefixIndex answers "does one of these prefixes hold addr" with one map
// lookup per distinct prefix length, as hash:net does in the kernel.
type prefixIndex struct {
	prefixes     map[netip.Prefix]struct{}
	lens4, lens6 []int // the distinct prefix lengths of each family
}

func newPrefixIndex(ps []netip.Prefix) *prefixIndex {
	x := &prefixIndex{prefixes: map[netip.Prefix]struct{}{}}
	for _, p := range ps {
		p = p.Masked()
		if _, dup := x.prefixes[p]; dup {
			continue
		}
		x.prefixes[p] = struct{}{}
		lens := &x.lens6
		if p.Addr().Is4() {
			lens = &x.lens4
		}
		if !slices.Contains(*lens, p.Bits()) {
			*lens = append(*lens, p.Bits())
		}
	}
	return x
}

// contains reports whether a prefix of the index holds addr; a nil index
// holds nothing.
func (x *prefixIndex) contains(addr netip.Addr) bool {
	if x == nil {
		return false
	}
	lens := x.lens6
	if addr.Is4() {
		lens = x.lens4
	}
	for _, n := range lens {
		if pr, err := addr.Prefix(n); err == nil {
			if _, ok := x.prefixes[pr]; ok {
				return true
			}
		}
	}
	return false
}
