package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/internal/ipset/ipsettest"
)

// testClock is a settable clock for the fake kernel, safe across
// goroutines.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fastSystem is one fake namespace: ipsets and the mangle tables of both
// families, wired so that a set a rule matches cannot be destroyed and a
// rule cannot name a missing set.
type fastSystem struct {
	k      *ipsettest.Kernel
	clock  *testClock
	v4, v6 *fakeTables
	nl     *fakeNetlink
}

func newFastSystem() *fastSystem {
	s := &fastSystem{k: ipsettest.New(), clock: &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, nl: newFakeNetlink()}
	s.k.Now = s.clock.Now
	s.v4, s.v6 = newFakeTablesWithSets(IPv4, s.k), newFakeTablesWithSets(IPv6, s.k)
	s.k.Referenced = func(name string) bool { return s.v4.referencesSet(name) || s.v6.referencesSet(name) }
	return s
}

// fastPath is a FastPath on the system's ipsets and clock.
func (s *fastSystem) fastPath() *FastPath {
	fp := NewFastPath(s.k, discard())
	fp.now = s.clock.Now
	return fp
}

func (s *fastSystem) gateway(t *testing.T, fp *FastPath) *Gateway {
	c := testSpec()
	c.StateDir = t.TempDir()
	c.Direct = prefixList("198.19.0.0/24", "2001:2:ff::/64")
	return New(c, Options{Log: discard(), NL: s.nl, FastPath: fp,
		Tables: map[Family]Tables{IPv4: s.v4, IPv6: s.v6}})
}

func (s *fastSystem) dump(t *testing.T) string {
	return mustSave(t, s.v4) + mustSave(t, s.v6) + s.k.String()
}

func prefixList(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

var both = []Family{IPv4, IPv6}

func TestFastPathSetupLearnTeardown(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	static := prefixList("198.18.8.0/24", "198.19.0.10/32", "2001:2:ff::/64",
		"::ffff:198.18.0.0/120", // no place in a set: left out
		"198.18.8.7/24")         // unmasked duplicate
	if err := fp.Setup(context.Background(), both, static); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	fp.Learn(ip("198.19.0.11"), 30*time.Second)   // clamped up to minLearnTimeout
	fp.Learn(ip("::ffff:198.19.0.12"), time.Hour) // learned as IPv4
	fp.Learn(ip("2001:2:1::9"), 48*time.Hour)     // clamped down to maxLearnTimeout
	fp.Learn(ip("198.19.0.10"), time.Hour)        // a static /32: must stay permanent
	fp.Learn(ip("198.18.8.9"), time.Hour)         // inside a static prefix
	fp.Learn(ip("2001:2:ff::1"), time.Hour)       // inside a static prefix
	fp.Learn(ip("0.0.0.0"), time.Hour)            // not a destination
	fp.Learn(netip.Addr{}, time.Hour)             // nothing
	sys.clock.Advance(time.Minute)
	fp.Learn(ip("198.19.0.12"), 2*time.Hour) // refreshed
	want := `gwd_direct4 hash:net inet maxelem 65536 timeout 0
  198.18.8.0/24 timeout 0
  198.19.0.10/32 timeout 0
  198.19.0.11/32 timeout 60
  198.19.0.12/32 timeout 7200
gwd_direct6 hash:net inet6 maxelem 65536 timeout 0
  2001:2:1::9/128 timeout 21540
  2001:2:ff::/64 timeout 0
`
	if got := sys.k.String(); got != want {
		t.Errorf("sets:\n%s\nwant:\n%s", got, want)
	}
	if got, want := fp.Stats(), (FastPathStats{Added: 3, Learned: 4, Covered: 3}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	if err := fp.Teardown(); err != nil {
		t.Fatal(err)
	}
	adds := sys.k.Ops("add")
	fp.Learn(ip("198.19.0.20"), time.Hour) // after Teardown: nothing
	if names := sys.k.Names(); len(names) != 0 || sys.k.Ops("add") != adds {
		t.Errorf("after Teardown: sets %v, %d adds", names, sys.k.Ops("add")-adds)
	}
	if err := fp.Teardown(); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func TestFastPathLearnBeforeSetupAndOtherFamily(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	fp.Learn(netip.MustParseAddr("198.19.0.11"), time.Hour)
	if err := fp.Setup(context.Background(), []Family{IPv4}, nil); err != nil {
		t.Fatal(err)
	}
	fp.Learn(netip.MustParseAddr("2001:2:1::9"), time.Hour) // IPv6 not set up
	if sys.k.Ops("add") != 0 || fp.Stats() != (FastPathStats{}) {
		t.Errorf("Learn acted without a set: %d adds, %+v", sys.k.Ops("add"), fp.Stats())
	}
	if got := sys.k.Names(); len(got) != 1 || got[0] != DirectSet4 {
		t.Errorf("sets = %v, want only %s", got, DirectSet4)
	}
}

func TestFastPathFullSetIsCountedNotFatal(t *testing.T) {
	sys := newFastSystem()
	var logs bytes.Buffer
	fp := NewFastPath(sys.k, slog.New(slog.NewTextHandler(&logs, nil)))
	fp.maxElem = 2
	// Three static prefixes do not fit in two entries: Setup still succeeds.
	if err := fp.Setup(context.Background(), []Family{IPv4}, prefixList("198.18.4.0/24", "198.18.5.0/24", "198.18.6.0/24")); err != nil {
		t.Fatalf("Setup with too many static prefixes: %v", err)
	}
	for i := range 6 {
		fp.Learn(netip.AddrFrom4([4]byte{198, 19, 0, byte(10 + i)}), time.Hour)
	}
	if got, want := fp.Stats(), (FastPathStats{Added: 2, Failed: 1 + 6}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
	// Learn failures are logged at the 1st, 2nd and 4th; the Setup
	// shortfall once.
	if n := strings.Count(logs.String(), "cannot add a learned address"); n != 3 {
		t.Errorf("%d learn failure log lines, want 3:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "not every static direct prefix fits"); n != 1 {
		t.Errorf("%d setup shortfall log lines, want 1:\n%s", n, logs.String())
	}
}

func TestFastPathResyncKeepsLearned(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	ctx := context.Background()
	if err := fp.Setup(ctx, both, prefixList("198.18.4.0/24", "2001:2:4::/48")); err != nil {
		t.Fatal(err)
	}
	fp.Learn(netip.MustParseAddr("198.19.0.11"), time.Hour)
	fp.Learn(netip.MustParseAddr("198.18.5.1"), time.Hour) // becomes covered by the next static list
	if err := fp.Setup(ctx, both, prefixList("198.18.5.0/24", "198.18.5.1/32")); err != nil {
		t.Fatal(err)
	}
	want := `gwd_direct4 hash:net inet maxelem 65536 timeout 0
  198.18.5.0/24 timeout 0
  198.18.5.1/32 timeout 0
  198.19.0.11/32 timeout 3600
gwd_direct6 hash:net inet6 maxelem 65536 timeout 0
`
	if got := sys.k.String(); got != want {
		t.Errorf("after resync:\n%s\nwant:\n%s", got, want)
	}
}

// TestFastPathConcurrentLearnDuringSetup: addresses learned while Setup
// makes them static end up permanent, whatever the interleaving (run with
// -race).
func TestFastPathConcurrentLearnDuringSetup(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	ctx := context.Background()
	if err := fp.Setup(ctx, both, nil); err != nil {
		t.Fatal(err)
	}
	var static []netip.Prefix
	for i := range 16 {
		static = append(static, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 7, byte(i)}), 32))
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			<-start
			for n := range 200 {
				fp.Learn(static[(w*5+n)%len(static)].Addr(), time.Minute)
			}
		})
	}
	close(start)
	if err := fp.Setup(ctx, both, static); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	info, err := ipset.New(sys.k).List(DirectSet4)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Entries) != len(static) {
		t.Errorf("%d entries, want %d", len(info.Entries), len(static))
	}
	for _, e := range info.Entries {
		if !e.Permanent() {
			t.Errorf("static %v became timed (%v left)", e.Prefix, e.Timeout)
		}
	}
}

func TestFastPathForbid(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	ip := netip.MustParseAddr
	fp.Forbid(ip("198.19.0.13"), time.Hour) // before Setup: remembered
	if err := fp.Setup(context.Background(), both, prefixList("198.18.8.0/24")); err != nil {
		t.Fatal(err)
	}
	fp.Learn(ip("198.19.0.11"), time.Hour)
	fp.Learn(ip("2001:2:1::9"), time.Hour)
	fp.Forbid(ip("198.19.0.11"), time.Second)     // learned: withdrawn, kept out for minLearnTimeout
	fp.Forbid(ip("::ffff:198.18.8.9"), time.Hour) // inside a static prefix: it stays
	fp.Learn(ip("198.19.0.11"), time.Hour)        // withheld
	fp.Learn(ip("198.19.0.13"), time.Hour)        // withheld (forbidden before Setup)
	fp.Forbid(ip("2001:2:1::9"), 10*time.Minute)  // withdrawn
	fp.Forbid(ip("2001:2:1::9"), time.Second)     // a shorter ban does not shorten it
	want := `gwd_direct4 hash:net inet maxelem 65536 timeout 0
  198.18.8.0/24 timeout 0
gwd_direct6 hash:net inet6 maxelem 65536 timeout 0
`
	if got := sys.k.String(); got != want {
		t.Errorf("sets:\n%s\nwant:\n%s", got, want)
	}
	sys.clock.Advance(minLearnTimeout) // 198.19.0.11's ban is over, 2001:2:1::9's is not
	fp.Learn(ip("198.19.0.11"), time.Hour)
	fp.Learn(ip("2001:2:1::9"), time.Hour)
	want = `gwd_direct4 hash:net inet maxelem 65536 timeout 0
  198.18.8.0/24 timeout 0
  198.19.0.11/32 timeout 3600
gwd_direct6 hash:net inet6 maxelem 65536 timeout 0
`
	if got := sys.k.String(); got != want {
		t.Errorf("after the short ban:\n%s\nwant:\n%s", got, want)
	}
	if got, want := fp.Stats(), (FastPathStats{Added: 1, Learned: 3, Withheld: 3, Withdrawn: 2}); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// TestFastPathForbidSaturated: when the book of kept-out addresses is full
// of live entries, nothing is learned until some expire.
func TestFastPathForbidSaturated(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	fp.book = newAddrBook(16, 2)
	if err := fp.Setup(context.Background(), both, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		fp.Forbid(netip.AddrFrom4([4]byte{198, 19, 1, byte(i)}), time.Duration(i+1)*minLearnTimeout)
	}
	fp.Learn(netip.MustParseAddr("198.19.0.11"), time.Hour)
	if st := fp.Stats(); st.Learned != 0 || st.Withheld != 1 {
		t.Errorf("learned while the book was full: %+v", st)
	}
	sys.clock.Advance(minLearnTimeout) // the first ban expires: room again
	fp.Learn(netip.MustParseAddr("198.19.0.11"), time.Hour)
	if st := fp.Stats(); st.Learned != 1 {
		t.Errorf("not learned after a ban expired: %+v", st)
	}
}

// TestFastPathLearnForbidRace: Learn and Forbid of the same addresses run
// side by side; whatever the interleaving, no forbidden address is in the
// set afterwards (run with -race).
func TestFastPathLearnForbidRace(t *testing.T) {
	sys := newFastSystem()
	fp := sys.fastPath()
	if err := fp.Setup(context.Background(), both, nil); err != nil {
		t.Fatal(err)
	}
	// Learn's add takes a millisecond; Forbid starts halfway through it.
	sys.k.OpDelay = time.Millisecond
	const addrs = 50
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i)}) }
	for i := range addrs { // each address: one Learn and one Forbid, released together
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; fp.Learn(addr(i), time.Hour) })
		wg.Go(func() { <-start; time.Sleep(sys.k.OpDelay / 2); fp.Forbid(addr(i), time.Hour) })
		close(start)
		wg.Wait()
	}
	info, err := ipset.New(sys.k).List(DirectSet4)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range info.Entries {
		t.Errorf("forbidden %v is in the set", e.Prefix)
	}
}

func TestGatewayFastPathLifecycle(t *testing.T) {
	for _, mode := range []string{ModeAppliance, ModeShared} {
		t.Run(mode, func(t *testing.T) {
			sys := newFastSystem()
			fp := sys.fastPath()
			g := sys.gateway(t, fp)
			g.spec.Mangle.Mode = mode
			ctx := context.Background()
			if err := g.Install(ctx); err != nil {
				t.Fatal(err)
			}
			during := sys.dump(t)
			for _, want := range []string{
				"-A GWD_PRE -m set --match-set gwd_direct4 dst -j RETURN",
				"-A GWD_PRE -m set --match-set gwd_direct6 dst -j RETURN",
				"gwd_direct4 hash:net inet maxelem 65536 timeout 0\n",
				"  198.19.0.0/24 timeout 0\n",
				"  10.0.0.0/8 timeout 0\n", // the bypass list is in the sets too
				"gwd_direct6 hash:net inet6 maxelem 65536 timeout 0\n",
				"  2001:2:ff::/64 timeout 0\n",
			} {
				if !strings.Contains(during, want) {
					t.Errorf("installed state lacks %q:\n%s", want, during)
				}
			}
			// The kernel keeps sets that rules match: tearing the fast
			// path down alone fails and leaves the sets.
			if err := fp.Teardown(); !errors.Is(err, ipset.ErrInUse) {
				t.Errorf("Teardown under the rules = %v, want ErrInUse", err)
			}
			if _, err := g.installEnv(ctx); err != nil { // repeatable
				t.Fatal(err)
			}
			fp.Learn(netip.MustParseAddr("198.19.1.1"), time.Hour)
			// Remove takes the rules out first, then the sets.
			if err := g.Remove(); err != nil {
				t.Fatal(err)
			}
			if after := sys.dump(t); strings.Contains(after, ChainPrefix) || strings.Contains(after, "gwd_direct") {
				t.Errorf("left after Remove:\n%s", after)
			}
		})
	}
}

// TestGatewayCleanupRemovesCrashedRun: a run that died left its rules and
// sets; the next start's Cleanup (with a fresh FastPath) removes both.
func TestGatewayCleanupRemovesCrashedRun(t *testing.T) {
	sys := newFastSystem()
	crashed := sys.gateway(t, sys.fastPath())
	if _, err := crashed.installEnv(context.Background()); err != nil { // and died: no Remove
		t.Fatal(err)
	}
	next := sys.gateway(t, sys.fastPath())
	next.spec.StateDir = crashed.spec.StateDir
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if after := sys.dump(t); strings.Contains(after, ChainPrefix) || strings.Contains(after, "gwd_direct") {
		t.Errorf("left after Cleanup:\n%s", after)
	}
}

func TestGatewayInstallWithFastPath(t *testing.T) {
	sys := newFastSystem()
	g := sys.gateway(t, sys.fastPath())
	if err := g.Install(context.Background()); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if d := sys.dump(t); !strings.Contains(d, "--match-set gwd_direct4") || !strings.Contains(d, "198.19.0.0/24 timeout 0") {
		t.Errorf("while installed:\n%s", d)
	}
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if d := sys.dump(t); strings.Contains(d, ChainPrefix) || strings.Contains(d, "gwd_direct") {
		t.Errorf("left after Remove:\n%s", d)
	}
}

func TestPrefixIndex(t *testing.T) {
	x := newPrefixIndex(prefixList("198.18.0.0/16", "198.19.0.10/32", "2001:2::/48", "198.18.0.0/16"))
	for addr, want := range map[string]bool{
		"198.18.200.1": true, "198.19.0.10": true, "198.19.0.11": false,
		"2001:2::1": true, "2001:3::1": false, "::ffff:198.18.0.1": false,
	} {
		if got := x.contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("contains(%s) = %v", addr, got)
		}
	}
	if len(x.lens4) != 2 || len(x.lens6) != 1 {
		t.Errorf("lengths %v %v", x.lens4, x.lens6)
	}
	var none *prefixIndex
	if none.contains(netip.MustParseAddr("198.18.0.1")) {
		t.Error("nil index contains an address")
	}
}
