package dns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	up := []string{"198.19.0.53"}
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no upstreams", Config{}, "upstreams: none given"},
		{"bad upstream", Config{Upstreams: []string{"198.19.0.53", "quic://1.1.1.1"}}, `upstreams[1]: upstream "quic://1.1.1.1": unknown scheme`},
		{"negative timeout", Config{Upstreams: up, Timeout: -time.Second}, "timeout: -1s is negative"},
		{"min above max", Config{Upstreams: up, MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, "min_ttl: 2h0m0s exceeds max_ttl 1h0m0s"},
		{"min above default max", Config{Upstreams: up, MinTTL: 48 * time.Hour}, "min_ttl: 48h0m0s exceeds max_ttl 24h0m0s"},
		{"negative stale", Config{Upstreams: up, MaxStale: -1}, "max_stale:"},
		{"negative memory", Config{Upstreams: up, MemorySize: -1}, "memory_size:"},
		{"bad block mode", Config{Upstreams: up, BlockMode: "drop"}, `block_mode: "drop"`},
		{"missing block list", Config{Upstreams: up, BlockLists: []string{filepath.Join(dir, "nope")}}, "block_lists[0]: opening block list:"},
		{"bad hosts name", Config{Upstreams: up, Hosts: map[string][]string{"a..lan": {"192.168.1.1"}}}, `hosts["a..lan"]: domain "a..lan": not a valid domain name`},
		{"bad hosts address", Config{Upstreams: up, Hosts: map[string][]string{"nas.lan": {"192.168.1"}}}, `hosts["nas.lan"]: ParseAddr("192.168.1")`},
		{"empty hosts entry", Config{Upstreams: up, Hosts: map[string][]string{"nas.lan": nil}}, `hosts["nas.lan"]: no addresses`},
		{"bad split domain", Config{Upstreams: up, Split: map[string][]string{".": {"198.18.1.1"}}}, `split["."]: domain ".": want a non-root domain name`},
		{"bad split upstream", Config{Upstreams: up, Split: map[string][]string{"lan": {"router.lan"}}}, `split["lan"][0]: upstream "router.lan"`},
		{"empty split", Config{Upstreams: up, Split: map[string][]string{"lan": {}}}, `split["lan"]: no upstreams`},
		{"duplicate split", Config{Upstreams: up, Split: map[string][]string{"lan": {"198.18.1.1"}, "LAN.": {"198.18.1.1"}}}, "domain given twice"},
		{"bad allow", Config{Upstreams: up, RebindAllow: []string{"ok.example", "bad name"}}, `rebind_allow[1]: domain "bad name"`},
		{"resolv_conf under a file", Config{ResolvConf: filepath.Join(notDir, "resolv.conf")}, "resolv_conf: "},
	} {
		_, err := New(tc.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestNewConfigOK(t *testing.T) {
	// A missing resolv.conf is fine: the WAN may not be up yet.
	h := newHandler(t, Config{ResolvConf: filepath.Join(t.TempDir(), "resolv.conf.auto")})
	if h.cache == nil || h.memory == nil || h.maxTTL != defaultMaxTTL || h.upstream.timeout != defaultTimeout {
		t.Errorf("defaults not applied: %+v", h)
	}
	h = newHandler(t, Config{Upstreams: []string{"198.19.0.53"}, CacheSize: -1})
	if h.cache != nil || h.Stats().CacheEntries != 0 {
		t.Error("CacheSize -1 left a cache")
	}
}
