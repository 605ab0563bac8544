package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/watchdog"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI("version")
	if code != exitOK || !strings.HasPrefix(out, "gatewayd ") {
		t.Errorf("version: code %d, out %q", code, out)
	}
}

func TestCheck(t *testing.T) {
	code, out, errOut := runCLI("check", "-c", "../../configs/gateway.toml")
	if code != exitOK || !strings.Contains(out, "config OK") {
		t.Errorf("check of the shipped config: code %d, out %q, err %q", code, out, errOut)
	}
	bad := writeConfig(t, "version = 1\n[tcp]\nidle_timeout = \"forever\"\n")
	code, _, errOut = runCLI("check", "-c", bad)
	if code != exitConfig || !strings.Contains(errOut, bad+":3: tcp.idle_timeout:") {
		t.Errorf("check of a bad config: code %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI("check", "-c", filepath.Join(t.TempDir(), "missing.toml"))
	if code != exitFailure || !strings.Contains(errOut, "reading config") {
		t.Errorf("check of a missing file: code %d, stderr %q", code, errOut)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"check", "-x"}, {"check", "extra"}} {
		if code, _, errOut := runCLI(args...); code != exitUsage || errOut == "" {
			t.Errorf("%v: code %d, stderr %q; want %d and a message", args, code, errOut, exitUsage)
		}
	}
}

// TestRulesPrintsWithoutTouching: `rules` renders the payloads; it reads
// the LAN subnets but installs nothing, so it also works unprivileged.
func TestRulesPrintsPayloads(t *testing.T) {
	code, out, errOut := runCLI("rules", "-c", "../../configs/gateway.toml")
	if code != exitOK {
		t.Fatalf("rules: code %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"# iptables-restore (appliance mode", "# ip6tables-restore", "*mangle",
		"-A PREROUTING -i br-lan -j GWD_PRE",
		"-A GWD_PRE -p tcp --syn -j TPROXY --on-ip 127.0.0.1 --on-port 15001 --tproxy-mark 0x1000000/0x1000000",
		"-A GWD_PRE -p tcp --syn -j TPROXY --on-ip ::1 --on-port 15001",
		"ip -4 rule add fwmark 0x1000000/0x1000000 lookup 2026 priority 9000",
		"ip -6 route add local ::/0 dev lo table 2026",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rules output lacks %q:\n%s", want, out)
		}
	}
}

// TestWriteInstalled: the installed-config file parses to the config
// written, and rewriting it replaces it.
func TestWriteInstalled(t *testing.T) {
	dir := t.TempDir()
	for _, table := range []int{2026, 2027} {
		text := fmt.Sprintf("version = 1\nstate_dir = %q\n[routing]\ntable = %d\n", dir, table)
		cfg, err := config.Parse(filepath.Join(t.TempDir(), "gateway.toml"), text)
		if err != nil {
			t.Fatal(err)
		}
		path, err := writeInstalled(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := config.Load(path)
		if err != nil || got.Routing.Table != table {
			t.Fatalf("installed config: %+v, %v; want routing.table %d", got, err, table)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("state dir holds %d files, want only %s", len(ents), installedName)
	}
}

// TestCleanupLockHeld: a state lock held by a live process that is no
// watchdog (a running gatewayd) makes cleanup refuse, naming the pid;
// --force goes ahead without the lock. Nothing here touches the kernel.
func TestCleanupLockHeld(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	l, err := watchdog.TryLock(lockPath(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	log := slog.New(slog.DiscardHandler)
	if _, _, err := lockForCleanup(cfg, false, log); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d holds", os.Getpid())) {
		t.Errorf("cleanup with the lock held by pid %d: %v; want a refusal naming it", os.Getpid(), err)
	}
	release, locked, err := lockForCleanup(cfg, true, log)
	if err != nil || locked {
		t.Fatalf("cleanup --force: locked %v, %v; want to go ahead without the lock", locked, err)
	}
	release()
	_ = l.Release()
	release, locked, err = lockForCleanup(cfg, false, log)
	if err != nil || !locked {
		t.Fatalf("cleanup with the lock free: locked %v, %v", locked, err)
	}
	release()
}

// TestCheckWarnsWithoutUpstream: a config whose resolver has nothing to
// ask (no dns.upstreams, dns.resolv_conf missing or without a usable
// nameserver) passes check, but with a warning naming the keys to set.
func TestCheckWarnsWithoutUpstream(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "resolv.empty")
	if err := os.WriteFile(empty, []byte("# no WAN yet\nnameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "resolv.good")
	if err := os.WriteFile(good, []byte("nameserver 198.18.0.53\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dns string
		warn      bool
	}{
		{"missing resolv_conf", fmt.Sprintf("resolv_conf = %q\n", filepath.Join(dir, "missing")), true},
		{"resolv_conf without usable nameserver", fmt.Sprintf("resolv_conf = %q\n", empty), true},
		{"resolv_conf with a nameserver", fmt.Sprintf("resolv_conf = %q\n", good), false},
		{"upstreams", fmt.Sprintf("resolv_conf = %q\nupstreams = [\"udp://198.18.0.53:53\"]\n", filepath.Join(dir, "missing")), false},
		{"dns off", fmt.Sprintf("enabled = false\nresolv_conf = %q\n", filepath.Join(dir, "missing")), false},
	} {
		cfg := writeConfig(t, "version = 1\n[dns]\n"+tc.dns)
		code, out, errOut := runCLI("check", "-c", cfg)
		if code != exitOK || !strings.Contains(out, "config OK") {
			t.Errorf("%s: code %d, out %q, stderr %q; want config OK", tc.name, code, out, errOut)
		}
		warned := strings.Contains(errOut, "warning: no DNS upstream is usable") &&
			strings.Contains(errOut, "dns.upstreams") && strings.Contains(errOut, "dns.resolv_conf")
		if warned != tc.warn {
			t.Errorf("%s: warned about upstreams = %v, want %v; stderr:\n%s", tc.name, warned, tc.warn, errOut)
		}
	}
}

// TestCheckDNSKeyErrors: the resolver's errors name the entry as config
// errors name keys everywhere ("dns.upstreams[0]", as "rule[1].port"),
// on the key's line, without repeating it in the message.
func TestCheckDNSKeyErrors(t *testing.T) {
	for _, tc := range []struct{ name, dns, want string }{
		{"upstream", "upstreams = [\"198.18.0.53\", \"udp://x:53\"]\n", `:3: dns.upstreams[1]: upstream "udp://x:53"`},
		{"split", "upstreams = [\"198.18.0.53\"]\n[dns.split]\n\"lan\" = [\"bogus://1\"]\n", `:5: dns.split["lan"][0]: upstream "bogus://1"`},
		{"rebind_allow", "upstreams = [\"198.18.0.53\"]\nrebind_allow = [\"a b\"]\n", `:4: dns.rebind_allow[0]: domain "a b"`},
	} {
		cfg := writeConfig(t, "version = 1\n[dns]\n"+tc.dns)
		code, _, errOut := runCLI("check", "-c", cfg)
		if code != exitConfig || !strings.Contains(errOut, cfg+tc.want) {
			t.Errorf("%s: code %d, stderr %q; want %d and %q", tc.name, code, errOut, exitConfig, cfg+tc.want)
		}
	}
}
