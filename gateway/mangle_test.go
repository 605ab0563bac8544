package gateway

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/internal/ipset"
	"github.com/gatewayd/gatewayd/internal/ipset/ipsettest"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// foreignSetup is a mangle table someone else wrote before gatewayd started.
const foreignSetup = `*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:qos_mark - [0:0]
-A PREROUTING -i wan -j qos_mark
-A qos_mark -p udp -j MARK --set-xmark 0x10/0xff
COMMIT
`

func newMangle(t *testing.T, ft *fakeTables) *mangleTable {
	return &mangleTable{Family: IPv4, Tables: ft, StateDir: t.TempDir(), Log: discard()}
}

func mustSave(t *testing.T, ft *fakeTables) string {
	t.Helper()
	s, err := ft.Save("mangle")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestApplianceReplacesTableAndRestoresForeignRules(t *testing.T) {
	ft := newFakeTables()
	if err := ft.Restore(foreignSetup, false); err != nil {
		t.Fatal(err)
	}
	before := mustSave(t, ft)
	m := newMangle(t, ft)
	c := testSpec()
	for range 2 { // Set is repeatable
		if err := m.Set(c, labEnv()); err != nil {
			t.Fatal(err)
		}
	}
	during := mustSave(t, ft)
	if strings.Contains(during, "qos_mark") {
		t.Errorf("appliance mode kept a foreign rule in the table:\n%s", during)
	}
	if !strings.Contains(during, "-A PREROUTING -i br-lan -j GWD_PRE") || !strings.Contains(during, "TPROXY --on-ip 127.0.0.1") {
		t.Errorf("rules missing:\n%s", during)
	}
	kept, err := os.ReadFile(filepath.Join(m.StateDir, "mangle-v4.rules"))
	if err != nil || !strings.Contains(string(kept), "-A qos_mark") {
		t.Fatalf("foreign rules not kept aside in the state dir: %v\n%s", err, kept)
	}
	// A fresh Mangle (as after a crash) finds the kept-aside rules.
	m2 := &mangleTable{Family: IPv4, Tables: ft, StateDir: m.StateDir, Log: discard()}
	if err := m2.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if after := mustSave(t, ft); after != before {
		t.Errorf("table after cleanup differs:\n--- after ---\n%s--- before ---\n%s", after, before)
	}
	if err := m2.Cleanup(); err != nil { // nothing left: still fine
		t.Fatalf("second cleanup: %v", err)
	}
	if after := mustSave(t, ft); after != before {
		t.Errorf("second cleanup changed the table:\n%s", after)
	}
}

func TestApplianceOnAbsentTable(t *testing.T) {
	ft := newFakeTables() // iptables-nft: no mangle table yet
	m := newMangle(t, ft)
	if err := m.Set(testSpec(), Env{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got, want := mustSave(t, ft), "-A "; strings.Contains(got, want) || strings.Contains(got, ChainPrefix) {
		t.Errorf("rules left after cleanup:\n%s", got)
	}
}

func TestApplianceSnapshotDropsLeftovers(t *testing.T) {
	// A crashed run left its rules and lost its state dir: the snapshot
	// must not keep gatewayd's own rules as "foreign".
	ft := newFakeTables()
	if err := ft.Restore(renderAppliance(testSpec(), IPv4, Env{}), false); err != nil {
		t.Fatal(err)
	}
	m := newMangle(t, ft)
	if err := m.Set(testSpec(), Env{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := mustSave(t, ft); strings.Contains(got, ChainPrefix) {
		t.Errorf("leftover rules restored:\n%s", got)
	}
}

func TestSharedLeavesOtherRulesAlone(t *testing.T) {
	ft := newFakeTables()
	if err := ft.Restore(foreignSetup, false); err != nil {
		t.Fatal(err)
	}
	before := mustSave(t, ft)
	m := newMangle(t, ft)
	c := testSpec()
	c.Mangle.Mode = ModeShared
	c.LAN.Interfaces = []string{"br-lan", "lan2"}
	for range 3 {
		if err := m.Set(c, labEnv()); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := ft.List("mangle", "PREROUTING")
	want := []string{"-P PREROUTING ACCEPT", "-A PREROUTING -i br-lan -j GWD_PRE", "-A PREROUTING -i lan2 -j GWD_PRE", "-A PREROUTING -i wan -j qos_mark"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("PREROUTING = %q, want %q", got, want)
	}
	if ft.restores != 4 { // the setup, then one --noflush per Set
		t.Errorf("restores = %d", ft.restores)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if after := mustSave(t, ft); after != before {
		t.Errorf("shared cleanup changed foreign rules:\n--- after ---\n%s--- before ---\n%s", after, before)
	}
}

func TestCleanupRemovesStaleJumpsEverywhere(t *testing.T) {
	ft := newFakeTables()
	if err := ft.Restore(renderShared(testSpec(), IPv4, Env{}), true); err != nil {
		t.Fatal(err)
	}
	for _, spec := range [][]string{{"-i", "old0", "-j", chainPre}, {"-i", "br-lan", "-j", chainPre}} {
		if err := ft.Insert("mangle", "PREROUTING", 1, spec...); err != nil {
			t.Fatal(err)
		}
	}
	if err := newMangle(t, ft).Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := mustSave(t, ft); strings.Contains(got, ChainPrefix) {
		t.Errorf("left:\n%s", got)
	}
}

func TestFailedRestoreChangesNothing(t *testing.T) {
	ft := newFakeTables()
	if err := ft.Restore(foreignSetup, false); err != nil {
		t.Fatal(err)
	}
	before := mustSave(t, ft)
	c := testSpec()
	c.Mangle.ExtraV4 = []string{"-A NOCHAIN -j ACCEPT"} // iptables-restore rejects it
	m := newMangle(t, ft)
	if err := m.Set(c, Env{}); err == nil || !strings.Contains(err.Error(), "installing IPv4 mangle table") {
		t.Fatalf("err = %v", err)
	}
	if got := mustSave(t, ft); got != before {
		t.Errorf("failed apply changed the table:\n%s", got)
	}
	if err := m.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if got := mustSave(t, ft); got != before {
		t.Errorf("cleanup after a failed apply changed the table:\n%s", got)
	}
}

func TestForeignRules(t *testing.T) {
	saved := foreignSetup + "" // plus gatewayd lines below
	saved = strings.Replace(saved, ":qos_mark", ":GWD_PRE - [0:0]\n:qos_mark", 1)
	saved = strings.Replace(saved, "COMMIT", "-A PREROUTING -i br-lan -j GWD_PRE\n-A GWD_PRE -j RETURN\nCOMMIT", 1)
	kept, foreign := foreignRules(saved)
	if strings.Contains(kept, ChainPrefix) {
		t.Errorf("kept has gatewayd lines:\n%s", kept)
	}
	if len(foreign) != 3 { // :qos_mark, and its two rules
		t.Errorf("foreign = %q", foreign)
	}
}

// TestFastPathRulesNeedTheSets: like iptables-restore, the fake rejects a
// payload whose rules name a missing set, in both modes, and changes
// nothing; with the sets in place the same Set succeeds.
func TestFastPathRulesNeedTheSets(t *testing.T) {
	for _, mode := range []string{ModeAppliance, ModeShared} {
		k := ipsettest.New()
		ft := newFakeTablesWithSets(IPv4, k)
		if err := ft.Restore(foreignSetup, false); err != nil {
			t.Fatal(err)
		}
		before := mustSave(t, ft)
		m := newMangle(t, ft)
		c := testSpec()
		c.Mangle.Mode = mode
		env := labEnv()
		env.FastPath = true
		if err := m.Set(c, env); err == nil || !strings.Contains(err.Error(), "Set gwd_direct4 doesn't exist") {
			t.Fatalf("%s: Set without the sets = %v", mode, err)
		}
		if got := mustSave(t, ft); got != before {
			t.Errorf("%s: a rejected payload changed the table:\n%s", mode, got)
		}
		// A set of the other family does not do either.
		sets := ipset.New(k)
		if err := sets.Ensure(ipset.Set{Name: DirectSet4, Family: ipset.IPv6}); err != nil {
			t.Fatal(err)
		}
		if err := m.Set(c, env); err == nil || !strings.Contains(err.Error(), "protocol family") {
			t.Errorf("%s: Set with an inet6 %s = %v", mode, DirectSet4, err)
		}
		if err := sets.Ensure(ipset.Set{Name: DirectSet4, Family: ipset.IPv4}); err != nil {
			t.Fatal(err)
		}
		if err := m.Set(c, env); err != nil {
			t.Fatalf("%s: Set with the sets: %v", mode, err)
		}
		if err := m.Cleanup(); err != nil {
			t.Fatal(err)
		}
		if ft.referencesSet(DirectSet4) {
			t.Errorf("%s: a rule still matches %s after Cleanup", mode, DirectSet4)
		}
	}
}

// raceOnSave is a fakeTables on which, right after the first dump, someone
// else deletes a rule (as a running keeper or firewall would): the removal
// transaction built from that dump then fails as a whole.
type raceOnSave struct {
	*fakeTables
	saves int
	race  func()
}

func (r *raceOnSave) Save(table string) (string, error) {
	s, err := r.fakeTables.Save(table)
	if r.saves++; r.saves == 1 {
		r.race()
	}
	return s, err
}

func TestRemoveOwnIsOneTransactionAndRetries(t *testing.T) {
	g, sys := newTestGateway(t, nil)
	g.spec.Mangle.Mode = ModeShared
	if err := sys.v4.Restore("*mangle\n:FOREIGN - [0:0]\n-A PREROUTING -j FOREIGN\n-A FOREIGN -j RETURN\nCOMMIT\n", true); err != nil {
		t.Fatal(err)
	}
	if _, err := g.installEnv(context.Background()); err != nil {
		t.Fatal(err)
	}
	restores := sys.v4.restores
	spy := &raceOnSave{fakeTables: sys.v4, race: func() {
		if err := sys.v4.Delete("mangle", "OUTPUT", "-j", chainOut); err != nil {
			t.Fatal(err)
		}
	}}
	m := &mangleTable{Family: IPv4, Tables: spy, StateDir: g.spec.StateDir, Log: discard()}
	if err := m.removeOwn(); err != nil {
		t.Fatal(err)
	}
	if spy.saves != 2 || sys.v4.restores != restores+1 {
		t.Errorf("%d dumps and %d committed restores, want 2 and 1 (the first transaction fails as a whole)", spy.saves, sys.v4.restores-restores)
	}
	saved, _ := sys.v4.Save("mangle")
	if strings.Contains(saved, ChainPrefix) || !strings.Contains(saved, "-A PREROUTING -j FOREIGN") {
		t.Errorf("after removal:\n%s\nwant no GWD_ line and the foreign rules kept", saved)
	}
}
