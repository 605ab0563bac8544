package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/dns"
)

// dnsConfig maps the [dns] section onto the resolver's config.
func dnsConfig(cfg *config.Config) dns.Config {
	d := cfg.DNS
	return dns.Config{
		Upstreams: d.Upstreams, ResolvConf: d.ResolvConf, BypassMark: cfg.TProxy.BypassMark,
		Timeout: d.Timeout.Duration, CacheSize: d.CacheSize,
		MinTTL: d.MinTTL.Duration, MaxTTL: d.MaxTTL.Duration,
		ServeStale: d.ServeStale, MaxStale: d.MaxStale.Duration,
		Hosts: d.Hosts, BlockLists: d.BlockLists, BlockMode: d.BlockMode, Split: d.Split,
		RebindProtection: d.RebindProtection, RebindAllow: d.RebindAllow,
	}
}

// newResolver builds the resolver; learned (may be nil) hears what
// addresses names resolve to. Its errors become config errors naming the
// dns.* key (and entry) and its line.
func newResolver(cfg *config.Config, learned func(string, netip.Addr, time.Duration), log *slog.Logger) (*dns.Handler, error) {
	dc := dnsConfig(cfg)
	dc.Learned = learned
	h, err := dns.New(dc, log)
	if err != nil {
		var ce *dns.ConfigError
		if errors.As(err, &ce) {
			return nil, cfg.KeyError("dns."+ce.Field, ce.Err)
		}
		return nil, cfg.KeyError("dns", err)
	}
	return h, nil
}

// newDNSServer builds the DNS hijack relay and its resolver; learned
// (may be nil) hears what addresses names resolve to.
func newDNSServer(cfg *config.Config, learned func(string, netip.Addr, time.Duration), log *slog.Logger) (*dns.Server, *dns.Handler, error) {
	h, err := newResolver(cfg, learned, log.With("relay", "dns"))
	if err != nil {
		return nil, nil, err
	}
	var listen []netip.AddrPort
	for _, ap := range cfg.ListenAddrPorts() {
		listen = append(listen, netip.AddrPortFrom(ap.Addr(), cfg.DNS.Port))
	}
	return dns.NewServer(dns.ServerConfig{Listen: listen, BypassMark: cfg.TProxy.BypassMark}, h, log.With("relay", "dns")), h, nil
}

// upstreamWarning says, naming the keys to set, that the resolver has no
// upstream it could ask now: dns.upstreams is empty and dns.resolv_conf is
// missing or lists no usable nameserver. "" if it has one, or DNS is off.
// Not an error: on OpenWrt the file appears once the WAN is up.
func upstreamWarning(cfg *config.Config) string {
	d := cfg.DNS
	if !d.Enabled || len(d.Upstreams) > 0 || d.ResolvConf == "" {
		return ""
	}
	addrs, err := dns.ResolvConfNameservers(d.ResolvConf)
	var why string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		why = "does not exist"
	case err != nil:
		why = fmt.Sprintf("cannot be read (%v)", err)
	case len(addrs) == 0:
		why = "lists no usable nameserver (loopback and unspecified ones are skipped)"
	default:
		return ""
	}
	return fmt.Sprintf("no DNS upstream is usable: dns.upstreams is empty and dns.resolv_conf (%s) %s; "+
		"hijacked DNS queries fail until it lists a nameserver. Set dns.upstreams, or point dns.resolv_conf at a file with nameserver lines",
		d.ResolvConf, why)
}
