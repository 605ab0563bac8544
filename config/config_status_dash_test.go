package config

import (
	"slices"
	"testing"
)

// TestStatusDashboardKeys: the query log is off unless set; the leases
// file is OpenWrt's unless set, "" turns it off, a relative path is
// refused naming the key.
func TestStatusDashboardKeys(t *testing.T) {
	for _, c := range []struct {
		body     string
		queryLog bool
		leases   StatusPath
	}{
		{"", false, DefaultDHCPLeases},
		{"query_log = true", true, DefaultDHCPLeases},
		{"query_log = false\ndhcp_leases = \"\"", false, ""},
		{"dhcp_leases = \"/var/lib/misc//dnsmasq.leases\"", false, "/var/lib/misc/dnsmasq.leases"},
	} {
		cfg, err := Parse("f.toml", "version = 1\n[status]\n"+c.body+"\n")
		if err != nil {
			t.Fatalf("%q: %v", c.body, err)
		}
		if s := cfg.Status; s.QueryLog != c.queryLog || s.DHCPLeases != c.leases {
			t.Errorf("%q: query_log %v, dhcp_leases %q; want %v, %q", c.body, s.QueryLog, s.DHCPLeases, c.queryLog, c.leases)
		}
	}
	expectConfigErrors(t, []struct{ name, text, want string }{
		{"query_log type", "version = 1\n[status]\nquery_log = \"yes\"\n", "f.toml:3: status.query_log:"},
		{"relative leases", "version = 1\n[status]\n\ndhcp_leases = \"dhcp.leases\"\n", "f.toml:4: status.dhcp_leases: want an absolute path"},
	})
}

// TestQueryLogNeedsRestart: the query log and the leases file are set up
// at start; a reload changing them is refused, naming the keys.
func TestQueryLogNeedsRestart(t *testing.T) {
	a, err := Parse("a.toml", "version = 1\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b.toml", "version = 1\n[status]\nquery_log = true\ndhcp_leases = \"/tmp/x\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if keys := RestartKeys(a, b); !slices.Equal(keys, []string{"status.query_log", "status.dhcp_leases"}) {
		t.Errorf("RestartKeys = %v, want [status.query_log status.dhcp_leases]", keys)
	}
}
