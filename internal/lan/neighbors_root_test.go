package lan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	"github.com/vishvananda/netns"
)

// testNS creates a fresh network namespace named like netlab's (so a
// crashed run's leftovers are swept by netlab.SweepStale) and returns its
// name and an open handle; both are removed at cleanup.
func testNS(t *testing.T) (string, NetNS) {
	t.Helper()
	netlab.Require(t)
	var rnd [2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("%s%d-route-%s", netlab.NamePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", name, err)
	}
	t.Cleanup(func() { h.Close() })
	return name, h
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestNeighborsKernel watches the neighbour table of a fresh namespace with
// a veth pair: a permanent entry added before the watch is listed, and a
// change, an addition and a deletion made afterwards arrive as updates.
func TestNeighborsKernel(t *testing.T) {
	name, ns := testNS(t)
	in := func(args ...string) { ip(t, append([]string{"-n", name}, args...)...) }
	in("link", "add", "rt0", "type", "veth", "peer", "name", "rt1")
	in("link", "set", "rt0", "up")
	in("link", "set", "rt1", "up")
	in("addr", "add", "198.18.50.1/24", "dev", "rt0")
	in("neigh", "add", "198.18.50.2", "lladdr", "02:00:00:00:50:02", "dev", "rt0", "nud", "permanent")
	in("neigh", "add", "2001:2:50::2", "lladdr", "02:00:00:00:50:06", "dev", "rt0", "nud", "permanent")

	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := WatchNeighbors(ctx, testLogger(t), &ns)
	if err != nil {
		t.Fatalf("WatchNeighbors: %v", err)
	}
	for addr, want := range map[string]string{"198.18.50.2": "02:00:00:00:50:02", "2001:2:50::2": "02:00:00:00:50:06"} {
		if got := n.Lookup(netip.MustParseAddr(addr)).String(); got != want {
			t.Errorf("listed %s = %q, want %s", addr, got, want)
		}
	}

	in("neigh", "change", "198.18.50.2", "lladdr", "02:00:00:00:50:aa", "dev", "rt0", "nud", "permanent")
	eventually(t, "changed MAC", lookupIs(n, "198.18.50.2", "02:00:00:00:50:aa"))
	in("neigh", "add", "198.18.50.3", "lladdr", "02:00:00:00:50:03", "dev", "rt0", "nud", "reachable")
	eventually(t, "added neighbour", lookupIs(n, "198.18.50.3", "02:00:00:00:50:03"))
	in("neigh", "del", "2001:2:50::2", "dev", "rt0")
	eventually(t, "deleted neighbour", lookupIs(n, "2001:2:50::2", ""))

	cancel()
	select {
	case <-n.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher did not stop")
	}
	// The netlink reader and closer goroutines are gone too.
	eventually(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= goroutines })
	if n := openFDs(t); n > fds {
		t.Errorf("%d file descriptors open after stopping, %d before", n, fds)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
