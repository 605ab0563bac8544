package route

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []RuleSpec
		field string
		want  string
	}{
		{"no outbound", []RuleSpec{{Dst: pfx("198.18.0.0/24")}}, "outbound", "missing"},
		{"bad proto", []RuleSpec{{Proto: "icmp", Outbound: "x"}}, "proto", `"icmp"`},
		{"upper proto", []RuleSpec{{Proto: "TCP", Outbound: "x"}}, "proto", `"TCP"`},
		{"zero prefix", []RuleSpec{{Dst: []netip.Prefix{{}}, Outbound: "x"}}, "dst", "invalid prefix"},
		{"zero src prefix", []RuleSpec{{Src: []netip.Prefix{{}}, Outbound: "x"}}, "src", "invalid prefix"},
		{"port zero", []RuleSpec{{Port: []PortRange{{0, 10}}, Outbound: "x"}}, "port", "invalid port range 0-10"},
		{"port reversed", []RuleSpec{{Port: []PortRange{{10, 5}}, Outbound: "x"}}, "port", "invalid port range 10-5"},
		{"long mac", []RuleSpec{{MAC: []net.HardwareAddr{{1, 2, 3, 4, 5, 6, 7, 8}}, Outbound: "x"}}, "mac", "6-byte"},
		{"empty iface", []RuleSpec{{Iface: []string{""}, Outbound: "x"}}, "iface", `""`},
		{"long iface", []RuleSpec{{Iface: []string{"a-very-long-ifname"}, Outbound: "x"}}, "iface", "not a valid interface name"},
		{"plus inside iface", []RuleSpec{{Iface: []string{"a+b"}, Outbound: "x"}}, "iface", "not a valid"},
		{"wildcard domain", []RuleSpec{{Domain: []string{"*.example.com"}, Outbound: "x"}}, "domain", "use domain_suffix"},
		{"empty label", []RuleSpec{{DomainSuffix: []string{"example..com"}}}, "outbound", "missing"},
		{"empty label with outbound", []RuleSpec{{DomainSuffix: []string{"example..com"}, Outbound: "x"}}, "domain_suffix", "empty label"},
		{"bad char", []RuleSpec{{Domain: []string{"exa mple.com"}, Outbound: "x"}}, "domain", "not allowed"},
		{"root", []RuleSpec{{DomainSuffix: []string{"."}, Outbound: "x"}}, "domain_suffix", "empty domain name"},
		{"long name", []RuleSpec{{Domain: []string{strings.Repeat("a.", 127) + "com"}, Outbound: "x"}}, "domain", "longer than 253"},
		{"empty keyword", []RuleSpec{{DomainKeyword: []string{" "}, Outbound: "x"}}, "domain_keyword", "empty keyword"},
		{"keyword with slash", []RuleSpec{{DomainKeyword: []string{"a/b"}, Outbound: "x"}}, "domain_keyword", "never appears"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules := append([]RuleSpec{{Outbound: "ok"}}, tt.rules...) // the bad rule is index 1
			_, err := Compile(rules, "direct")
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error = %v, want a *CompileError", err)
			}
			if ce.Rule != 1 || ce.Field != tt.field || !strings.Contains(ce.Err.Error(), tt.want) {
				t.Errorf("got rule %d field %q err %q; want rule 1 field %q containing %q", ce.Rule, ce.Field, ce.Err, tt.field, tt.want)
			}
		})
	}
	if _, err := Compile(nil, ""); err == nil {
		t.Error("empty default accepted")
	}
}

func TestParsePortRange(t *testing.T) {
	good := map[string]PortRange{"443": {443, 443}, "1-65535": {1, 65535}, " 8000 - 8100 ": {8000, 8100}, "22-22": {22, 22}}
	for s, want := range good {
		got, err := ParsePortRange(s)
		if err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "0", "65536", "-1", "1-", "-5", "10-5", "a", "1-2-3", "0x50", "+80"} {
		if got, err := ParsePortRange(s); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want an error", s, got)
		}
	}
	var p PortRange
	if err := p.UnmarshalText([]byte("8000-8100")); err != nil || p.String() != "8000-8100" {
		t.Errorf("UnmarshalText/String round trip: %v %v", p, err)
	}
}

func TestDomainNormalization(t *testing.T) {
	tab := mustCompile(t, []RuleSpec{
		{Domain: []string{"  WWW.Example.COM. "}, DomainSuffix: []string{".Example.ORG"}, DomainKeyword: []string{"ADS"}, Outbound: "p"},
	}, "direct")
	r := tab.Rules()[0]
	if got := r.String(); got != "domain=www.example.com domain_suffix=example.org domain_keyword=ads -> p" {
		t.Errorf("normalized rule = %q", got)
	}
}

func FuzzMatchDomain(f *testing.F) {
	tab, err := Compile([]RuleSpec{
		{Domain: []string{"a.example.com"}, DomainSuffix: []string{"example.org", "org"}, DomainKeyword: []string{"trk"}, Outbound: "p"},
	}, "direct")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", ".", "..", "a.example.com.", "x.example.org", "ORG", "trk", "\xff.org"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		fl := tcp("198.18.0.1:1")
		fl.Domain = name
		out, _ := tab.Match(fl)
		if out == "p" && !strings.Contains(strings.ToLower(name), "trk") && !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(name, ".")), "org") &&
			strings.ToLower(strings.TrimSuffix(name, ".")) != "a.example.com" {
			t.Errorf("%q matched the rule", name)
		}
		_ = tab.DirectDomain(name)
		_, _ = parseDomain(name)
		_, _ = ParsePortRange(name)
	})
}
