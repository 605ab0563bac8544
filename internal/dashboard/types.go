package dashboard

import (
	"net/netip"
	"time"
)

// Flow is one active flow as the daemon reports it to the dashboard.
type Flow struct {
	Proto    string // "tcp" or "udp"
	Client   netip.AddrPort
	Dst      netip.AddrPort
	Domain   string // "" when unknown
	Outbound string // how it leaves: "direct" or an outbound's name
	Rule     string // the rule's label, "default", or "" when unknown
	Up, Down uint64 // bytes client -> remote and back so far
	Start    time.Time
}

// Counters are the daemon's running totals the Now panel shows.
type Counters struct {
	TCPActive    uint64 // TCP flows relayed now
	UDPActive    uint64 // UDP sessions open now
	DNSQueries   uint64 // DNS queries answered since start
	DNSCacheHits uint64 // of which from the cache
	DNSBlocked   uint64 // of which blocked
}

// Interception is the state of the kernel interception.
type Interception struct {
	Installed   bool
	Reapplies   uint64    // self-heals since start
	LastReapply time.Time // zero: never
	Failsafe    string    // "open" or "closed"
}

// ConfigInfo names the running config.
type ConfigInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Upstream is one DNS upstream's counters.
type Upstream struct {
	Name    string        `json:"name"`
	Queries uint64        `json:"queries"`
	Errors  uint64        `json:"errors"`
	Latency time.Duration `json:"-"` // mean round trip of answered tries; 0: none yet
}

// Query is one answered DNS query of the recent-query ring.
type Query struct {
	Time    time.Time
	Client  netip.Addr
	Name    string
	Type    string
	Result  string // "answer", "blocked", "rebinding", "servfail", "hosts", ... (the source)
	Rcode   string
	Answer  string
	Latency time.Duration
}

// NameCount is a name and how often it was seen.
type NameCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// Rule is one compiled routing rule with its hit counts.
type Rule struct {
	Label    string `json:"label"`
	Match    string `json:"match"` // the conditions, as `gatewayd rules` prints them
	Outbound string `json:"outbound"`
	HitsTCP  uint64 `json:"hits_tcp"`
	HitsUDP  uint64 `json:"hits_udp"`
}

// FastPath is what the kernel fast path holds.
type FastPath struct {
	Enabled bool   `json:"enabled"`
	Static  int    `json:"static"`    // direct prefixes of the rules in the ipsets
	Learned uint64 `json:"learned"`   // DNS-learned addresses added or refreshed since start
	Removed uint64 `json:"withdrawn"` // learned entries withdrawn since start
}

// Rules is the routing policy as the Rules panel shows it.
type Rules struct {
	Rules    []Rule   `json:"rules"`
	Default  string   `json:"default"`
	FastPath FastPath `json:"fast_path"`
}
