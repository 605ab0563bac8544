package dns

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"time"
)

// Defaults for zero Config fields.
const (
	// defaultTimeout bounds one try of one upstream: a resolver that has
	// not answered by then is slower than trying the next one.
	defaultTimeout = 2 * time.Second
	// DefaultCacheSize is in answers; a home network asks for a few
	// thousand names a day, and an answer takes well under 1 KiB.
	DefaultCacheSize = 10000
	// defaultMaxTTL caps how long an answer is trusted without asking
	// again, like Unbound's cache-max-ttl.
	defaultMaxTTL = 24 * time.Hour
	// defaultMaxStale is how long past expiry an answer may still be
	// served when every upstream fails; RFC 8767 §5 suggests 1 to 3 days.
	defaultMaxStale = 24 * time.Hour
	// defaultMemorySize bounds the address -> name memory.
	defaultMemorySize = 16384
)

// Block modes: how a blocked name is answered.
const (
	BlockNXDomain = "nxdomain" // NXDOMAIN for every type
	BlockNull     = "null"     // A 0.0.0.0 / AAAA ::, NODATA for other types
)

// Config configures a Handler. Error messages from New name the bad field
// by the snake_case key given in brackets.
type Config struct {
	// Upstreams are the default resolvers, tried in order; see
	// ParseUpstream for the spec syntax. [upstreams]
	Upstreams []string
	// ResolvConf names a resolv.conf-style file whose nameservers are
	// tried after Upstreams, e.g. /tmp/resolv.conf.d/resolv.conf.auto on
	// OpenWrt. It is followed as it changes, and may be missing at start
	// (the WAN is not up yet). At least one of Upstreams and ResolvConf is
	// required. [resolv_conf]
	ResolvConf string
	// BypassMark is the SO_MARK of every upstream socket, so gatewayd's own
	// queries are not intercepted again. 0 sets none. [bypass_mark]
	BypassMark uint32
	// UpstreamTLS is the base TLS configuration of DoT upstreams (e.g. for
	// custom roots). nil: the system roots. Not a config file field.
	UpstreamTLS *tls.Config
	// Timeout bounds each try of one upstream; 0: 2 s. [timeout]
	Timeout time.Duration

	// CacheSize bounds the answer cache, in answers; 0: DefaultCacheSize, < 0: no
	// cache. [cache_size]
	CacheSize int
	// MinTTL and MaxTTL clamp how long answers are cached (negative
	// answers are also capped at 3 h, RFC 2308 §5). MaxTTL 0: 24 h.
	// [min_ttl, max_ttl]
	MinTTL, MaxTTL time.Duration
	// ServeStale answers from expired cache entries, with TTL 30, when
	// every upstream fails, up to MaxStale past expiry (0: 24 h).
	// [serve_stale, max_stale]
	ServeStale bool
	MaxStale   time.Duration

	// Hosts answers names (exactly, not their subdomains) with fixed
	// addresses: A and AAAA from the list, NODATA for other types. [hosts]
	Hosts map[string][]string
	// BlockLists are files of blocked domains, in hosts format
	// ("0.0.0.0 ads.example") or one domain per line. Blocking a domain
	// blocks its subdomains. [block_lists]
	BlockLists []string
	// BlockMode is BlockNXDomain (default) or BlockNull. [block_mode]
	BlockMode string

	// Split sends names at or under a domain to that domain's own
	// upstreams (specs as for Upstreams); the longest domain wins. [split]
	Split map[string][]string

	// RebindProtection refuses answers that give a public name a private,
	// loopback, link-local or unspecified address (see rebind.go). The
	// config file should default it to on. [rebind_protection]
	RebindProtection bool
	// RebindAllow are domains (with their subdomains) exempt from rebinding
	// protection. [rebind_allow]
	RebindAllow []string

	// MemorySize bounds the address -> name memory; 0: 16384.
	// [memory_size]
	MemorySize int

	// Learned, if set, is told each address the memory learns for a name,
	// and again when an answer extends what is left of its lifetime by
	// more than half (not on every cache hit). It runs on the query's
	// goroutine and must be quick; the kernel fast path uses it. Not a
	// config file field.
	Learned func(name string, addr netip.Addr, ttl time.Duration)

	// Now is the clock of TTLs and expiry; nil: time.Now. For tests.
	Now func() time.Time
}

// New checks cfg, reads the block lists and returns a Handler. A nil log
// discards output.
func New(cfg Config, log *slog.Logger) (*Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{log: log, now: cfg.Now, upstreams: new(upstreamRegistry), blockNull: cfg.BlockMode == BlockNull}
	if h.now == nil {
		h.now = time.Now
	}
	if err := h.configure(&cfg); err != nil {
		_ = h.Close()
		return nil, err
	}
	cacheSize := 0
	if h.cache != nil {
		cacheSize = h.cache.lru.max
	}
	log.Info("dns: resolver configured", "upstreams", h.upstream.String(),
		"split_domains", len(h.split), "hosts", len(h.hosts), "blocked_domains", h.block.len(),
		"rebind_protection", h.rebind, "cache_size", cacheSize, "serve_stale", cfg.ServeStale)
	return h, nil
}

func (h *Handler) configure(cfg *Config) error {
	if err := checkDurations(cfg); err != nil {
		return err
	}
	opt := UpstreamOptions{Mark: cfg.BypassMark, TLSConfig: cfg.UpstreamTLS}
	mkGroup := func(field string, specs []string, rc *ResolvConf) (*Group, error) {
		ups := make([]Upstream, 0, len(specs))
		for i, s := range specs {
			u, err := ParseUpstream(s, opt)
			if err != nil {
				return nil, fieldError(fmt.Sprintf("%s[%d]", field, i), err)
			}
			ups = append(ups, u)
		}
		g := NewGroup(cfg.Timeout, ups, rc)
		g.now, g.stats = h.now, h.upstreams
		h.groups = append(h.groups, g)
		return g, nil
	}

	var rc *ResolvConf
	if cfg.ResolvConf != "" {
		if _, err := os.Stat(cfg.ResolvConf); errors.Is(err, fs.ErrNotExist) {
			h.log.Warn("dns: resolv_conf does not exist yet; waiting for it", "path", cfg.ResolvConf)
		} else if err != nil {
			return fieldError("resolv_conf", err)
		}
		rc = ResolvConfUpstreams(cfg.ResolvConf, opt, h.log)
	} else if len(cfg.Upstreams) == 0 {
		return fieldError("upstreams", errors.New("none given, and no resolv_conf either"))
	}
	var err error
	if h.upstream, err = mkGroup("upstreams", cfg.Upstreams, rc); err != nil {
		return err
	}
	h.split, err = newSplit(cfg.Split, func(field string, specs []string) (*Group, error) {
		return mkGroup(field, specs, nil)
	})
	if err != nil {
		return err
	}
	if h.hosts, err = newHosts(cfg.Hosts); err != nil {
		return err
	}
	if err := h.configureBlocking(cfg); err != nil {
		return err
	}
	h.rebind = cfg.RebindProtection
	h.allow = make(suffixMap[struct{}], len(cfg.RebindAllow))
	for i, d := range cfg.RebindAllow {
		name, err := parseDomain(d)
		if err != nil {
			return fieldError(fmt.Sprintf("rebind_allow[%d]", i), err)
		}
		h.allow[name] = struct{}{}
	}

	if cfg.CacheSize >= 0 {
		maxStale := time.Duration(0)
		if cfg.ServeStale {
			maxStale = cmp.Or(cfg.MaxStale, defaultMaxStale)
		}
		size := cmp.Or(cfg.CacheSize, DefaultCacheSize)
		h.cache = newCache(size, maxStale, h.now)
		h.wire = newWireCache(min(size, maxWireEntries))
	}
	h.minTTL, h.maxTTL = cfg.MinTTL, cmp.Or(cfg.MaxTTL, defaultMaxTTL)
	h.memory = newMemory(cmp.Or(cfg.MemorySize, defaultMemorySize), h.now)
	h.memory.learned = cfg.Learned
	return nil
}

func checkDurations(cfg *Config) error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"timeout", cfg.Timeout}, {"min_ttl", cfg.MinTTL}, {"max_ttl", cfg.MaxTTL}, {"max_stale", cfg.MaxStale}} {
		if d.v < 0 {
			return fieldError(d.field, fmt.Errorf("%v is negative", d.v))
		}
	}
	if maxTTL := cmp.Or(cfg.MaxTTL, defaultMaxTTL); cfg.MinTTL > maxTTL {
		return fieldError("min_ttl", fmt.Errorf("%v exceeds max_ttl %v", cfg.MinTTL, maxTTL))
	}
	if cfg.MemorySize < 0 {
		return fieldError("memory_size", fmt.Errorf("%d is negative", cfg.MemorySize))
	}
	return nil
}

func (h *Handler) configureBlocking(cfg *Config) error {
	switch cfg.BlockMode {
	case "", BlockNXDomain, BlockNull:
	default:
		return fieldError("block_mode", fmt.Errorf("%q (want %q or %q)", cfg.BlockMode, BlockNXDomain, BlockNull))
	}
	if len(cfg.BlockLists) == 0 {
		return nil
	}
	var b blockBuilder
	for i, path := range cfg.BlockLists {
		if err := b.addFile(path); err != nil {
			return fieldError(fmt.Sprintf("block_lists[%d]", i), err)
		}
	}
	if b.invalid > 0 {
		h.log.Warn("dns: block lists have lines without a usable domain; ignored", "lines", b.invalid)
	}
	h.block = b.build()
	return nil
}

// ConfigError is an invalid Config: Field names the setting as the config
// file's [dns] keys do, with the entry ("upstreams[1]", `split["lan"]`).
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *ConfigError) Unwrap() error { return e.Err }

// fieldError is a ConfigError for field.
func fieldError(field string, err error) error { return &ConfigError{Field: field, Err: err} }
