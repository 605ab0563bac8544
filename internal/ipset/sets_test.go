package ipset_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/internal/ipset/ipsettest"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// fakeClock is a settable clock for the fake kernel's expiry.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func newFake() (*ipsettest.Kernel, *fakeClock) {
	k := ipsettest.New()
	c := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	k.Now = c.Now
	return k, c
}

var set4 = ipset.Set{Name: "gwd_direct4", Family: ipset.IPv4, MaxElem: 8}

func mustEnsure(t *testing.T, s *ipset.Sets, set ipset.Set) {
	t.Helper()
	if err := s.Ensure(set); err != nil {
		t.Fatal(err)
	}
}

func TestSyncKeepsTimedAndReconcilesPermanent(t *testing.T) {
	k, clock := newFake()
	s := ipset.New(k)
	mustEnsure(t, s, set4)
	ctx := context.Background()
	if _, err := s.Sync(ctx, set4.Name, prefixes(t, "198.18.0.0/24", "198.18.1.0/24")); err != nil {
		t.Fatal(err)
	}
	// Learned entries: one distinct, one equal to a prefix synced next.
	for _, p := range prefixes(t, "198.19.0.10/32", "198.18.9.0/24") {
		if err := s.Add(set4.Name, p, 90*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Sync(ctx, set4.Name, prefixes(t, "198.18.1.0/24", "198.18.9.0/24", "198.18.1.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if res != (ipset.SyncResult{Added: 1, Removed: 1}) {
		t.Errorf("Sync = %+v, want 1 added (the timed entry made permanent), 1 removed", res)
	}
	clock.Advance(30 * time.Second)
	want := `gwd_direct4 hash:net inet maxelem 8 timeout 0
  198.18.1.0/24 timeout 0
  198.18.9.0/24 timeout 0
  198.19.0.10/32 timeout 60
`
	if got := k.String(); got != want {
		t.Errorf("state:\n%s\nwant:\n%s", got, want)
	}
	// Repeating the same Sync changes nothing and lists once.
	adds := k.Ops("add")
	res, err = s.Sync(ctx, set4.Name, prefixes(t, "198.18.9.0/24", "198.18.1.0/24"))
	if err != nil || res != (ipset.SyncResult{}) || k.Ops("add") != adds {
		t.Errorf("repeated Sync = %+v, %v, %d adds", res, err, k.Ops("add")-adds)
	}
	clock.Advance(time.Minute) // the learned entry expires; the synced ones stay
	if got := k.String(); strings.Contains(got, "198.19.0.10") || !strings.Contains(got, "198.18.9.0/24 timeout 0") {
		t.Errorf("after expiry:\n%s", got)
	}
}

func TestSyncZeroPrefixAndValidation(t *testing.T) {
	k, _ := newFake()
	s := ipset.New(k)
	mustEnsure(t, s, set4)
	ctx := context.Background()
	if _, err := s.Sync(ctx, set4.Name, prefixes(t, "0.0.0.0/0")); err != nil {
		t.Fatal(err)
	}
	if got := k.String(); !strings.Contains(got, "0.0.0.0/1 timeout 0") || !strings.Contains(got, "128.0.0.0/1 timeout 0") {
		t.Errorf("/0 not held as two halves:\n%s", got)
	}
	before, adds := k.String(), k.Ops("add")
	for _, bad := range [][]netip.Prefix{
		prefixes(t, "198.18.0.0/24", "2001:2::/48"), // wrong family, after a good one
		{netip.Prefix{}},
		prefixes(t, "::ffff:198.18.0.0/120"),
	} {
		if _, err := s.Sync(ctx, set4.Name, bad); err == nil {
			t.Errorf("Sync(%v) succeeded", bad)
		}
	}
	if k.String() != before || k.Ops("add") != adds {
		t.Errorf("a rejected Sync touched the set:\n%s", k.String())
	}
	if _, err := s.Sync(ctx, "gwd_missing", nil); !errors.Is(err, ipset.ErrNotExist) {
		t.Errorf("Sync on a missing set = %v, want ErrNotExist", err)
	}
}

func TestSyncStopsOnCancel(t *testing.T) {
	k, _ := newFake()
	s := ipset.New(k)
	mustEnsure(t, s, set4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Sync(ctx, set4.Name, prefixes(t, "198.18.0.0/24")); !errors.Is(err, context.Canceled) {
		t.Errorf("Sync = %v, want context.Canceled", err)
	}
	if k.Ops("add") != 0 {
		t.Error("added after cancel")
	}
}

func TestAddFullAndRefresh(t *testing.T) {
	k, clock := newFake()
	s := ipset.New(k)
	small := ipset.Set{Name: "gwd_small", Family: ipset.IPv6, MaxElem: 2}
	mustEnsure(t, s, small)
	a, b, c := prefixes(t, "2001:2::1/128")[0], prefixes(t, "2001:2::2/128")[0], prefixes(t, "2001:2::3/128")[0]
	for _, p := range []netip.Prefix{a, b} {
		if err := s.Add(small.Name, p, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Add(small.Name, c, time.Minute); !errors.Is(err, ipset.ErrFull) {
		t.Errorf("Add to a full set = %v, want ErrFull", err)
	}
	// A present entry's timeout can still be refreshed in a full set.
	if err := s.Add(small.Name, a, time.Hour); err != nil {
		t.Errorf("refreshing in a full set: %v", err)
	}
	clock.Advance(10 * time.Second) // b expires and makes room
	if err := s.Add(small.Name, c, 1500*time.Millisecond); err != nil {
		t.Errorf("Add after expiry: %v", err)
	}
	want := `gwd_small hash:net inet6 maxelem 2 timeout 0
  2001:2::1/128 timeout 3590
  2001:2::3/128 timeout 2
`
	if got := k.String(); got != want {
		t.Errorf("state:\n%s\nwant:\n%s", got, want)
	}
	for _, tc := range []struct {
		name    string
		p       netip.Prefix
		timeout time.Duration
		is      error
	}{
		{"missing set", a, 0, ipset.ErrNotExist},
		{"negative timeout", a, -time.Second, nil},
		{"invalid prefix", netip.Prefix{}, 0, nil},
		{"IPv4-mapped", prefixes(t, "::ffff:198.18.0.1/128")[0], 0, nil},
	} {
		name := small.Name
		if tc.is == ipset.ErrNotExist {
			name = "gwd_missing"
		}
		err := s.Add(name, tc.p, tc.timeout)
		if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("%s: Add = %v", tc.name, err)
		}
	}
}

func TestEnsureReplacesOtherShapes(t *testing.T) {
	k, _ := newFake()
	s := ipset.New(k)
	refs := map[string]bool{}
	k.Referenced = func(n string) bool { return refs[n] }
	mustEnsure(t, s, ipset.Set{Name: set4.Name, Family: ipset.IPv6, MaxElem: 8})
	mustEnsure(t, s, set4) // family differs: replaced
	if info, err := s.List(set4.Name); err != nil || info.Family != ipset.IPv4 || !info.Timeouts || info.MaxElem != 8 {
		t.Fatalf("List = %+v, %v", info, err)
	}
	creates := k.Ops("create")
	mustEnsure(t, s, set4) // same shape: nothing to do
	if k.Ops("create") != creates {
		t.Error("Ensure re-created a set of the right shape")
	}
	refs[set4.Name] = true
	bigger := set4
	bigger.MaxElem = 16
	if err := s.Ensure(bigger); !errors.Is(err, ipset.ErrInUse) {
		t.Errorf("Ensure over a referenced set = %v, want ErrInUse", err)
	}
	if err := s.Ensure(ipset.Set{Name: "x", Family: 5}); err == nil {
		t.Error("Ensure accepted family 5")
	}
}

func TestDestroyToleratesMissingOnOldKernels(t *testing.T) {
	k, _ := newFake()
	k.OldDestroy = true
	s := ipset.New(k)
	if err := s.Destroy("gwd_none"); err != nil {
		t.Errorf("Destroy(missing) on an old kernel = %v", err)
	}
	mustEnsure(t, s, set4)
	k.Referenced = func(string) bool { return true }
	if err := s.Destroy(set4.Name); !errors.Is(err, ipset.ErrInUse) {
		t.Errorf("Destroy(referenced) = %v, want ErrInUse", err)
	}
	k.Referenced = nil
	if err := s.Destroy(set4.Name); err != nil || len(k.Names()) != 0 {
		t.Errorf("Destroy = %v, sets %v", err, k.Names())
	}
}
