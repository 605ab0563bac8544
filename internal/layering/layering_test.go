package layering

import (
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/gatewayd/gatewayd/"

// rank is each package's layer: a package may import only packages of a
// lower rank. Test-only and command packages (e2e, gwlab, netlab,
// testutil) are left out: they may use anything.
var rank = map[string]int{
	// 0: leaves, no gatewayd imports
	"internal/sockopt": 0, "internal/fdbudget": 0, "internal/ipset": 0, "internal/control": 0,
	"internal/watchdog": 0, "internal/metrics": 0, "sniff": 0, "internal/lan": 0,
	// 1: shared machinery
	"internal/listen": 1, "internal/udpio": 1, "route": 1, "internal/dashboard": 1,
	// 2: what relays and resolves
	"outbound": 2, "tcp": 2, "udp": 2, "dns": 2, "gateway": 2, "internal/status": 2,
	// 3: routes flows onto outbounds
	"dispatch": 3,
	// 4: maps a config file onto the specs of the packages below
	"config": 4,
	// 5: the daemon
	"cmd/gatewayd": 5,
}

// exempt are packages that only tests and tools use.
var exempt = []string{"internal/e2e", "internal/cmd/", "internal/netlab", "internal/testutil", "internal/layering", "internal/ipset/ipsettest", "internal/metrics/metricstest"}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestLayering(t *testing.T) {
	out := goList(t, "-json=ImportPath,Imports", module+"...")
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(p.ImportPath, module)
		if isExempt(name) {
			continue
		}
		r, ok := rank[name]
		if !ok {
			t.Errorf("package %s has no layer: add it to rank (and docs/architecture.md)", name)
			continue
		}
		seen++
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if isExempt(dep) {
				t.Errorf("%s imports %s, which only tests and tools may use", name, dep)
				continue
			}
			if dr, ok := rank[dep]; ok && dr >= r {
				t.Errorf("%s (layer %d) imports %s (layer %d): a package imports only lower layers", name, r, dep, dr)
			}
		}
	}
	if seen < len(rank)/2 {
		t.Fatalf("only %d packages checked: go list output not understood", seen)
	}
}

// TestOnlyTheDaemonReadsConfig: config is the daemon's; every other
// package takes its own spec.
func TestOnlyTheDaemonReadsConfig(t *testing.T) {
	out := goList(t, "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...")
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		name := strings.TrimPrefix(fields[0], module)
		for _, imp := range fields[1:] {
			if imp == module+"config" && name != "cmd/gatewayd" && !isExempt(name) {
				t.Errorf("%s imports config: only cmd/gatewayd may", name)
			}
		}
	}
}

// goList runs go list with args and returns its output.
func goList(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-buildvcs=false"}, args...)...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		t.Fatalf("go list: %v: %s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return out
}

func isExempt(name string) bool {
	for _, e := range exempt {
		if name == e || strings.HasSuffix(e, "/") && strings.HasPrefix(name, e) {
			return true
		}
	}
	return false
}
