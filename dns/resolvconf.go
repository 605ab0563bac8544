package dns

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// resolvConfRecheck is how often a ResolvConf stats its file at most. The
// WAN's resolvers change on a DHCP renewal or a reconnect, rarely, so one
// stat per second keeps the per-query cost negligible.
const resolvConfRecheck = time.Second

// ResolvConf follows the nameserver lines of a resolv.conf-style file, such
// as OpenWrt's /tmp/resolv.conf.d/resolv.conf.auto, which netifd rewrites
// with the WAN's DHCP/PPP resolvers. The file is read again when its mtime
// or size changes.
//
// Loopback and unspecified nameservers are skipped: they name the router
// itself, and a query sent there could come straight back to gatewayd. If
// the file vanishes or lists no usable nameserver (the WAN is down), the
// previous list is kept: an outdated resolver is likelier to work than none.
type ResolvConf struct {
	path    string
	opt     UpstreamOptions
	log     *slog.Logger
	recheck time.Duration

	mu      sync.Mutex
	checked time.Time // last stat (monotonic)
	mtime   time.Time
	size    int64
	ups     []Upstream
	closers []*udpUpstream
}

// ResolvConfUpstreams returns a ResolvConf following path. It reads the
// file on first use. A nil log discards output.
func ResolvConfUpstreams(path string, opt UpstreamOptions, log *slog.Logger) *ResolvConf {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ResolvConf{path: path, opt: opt, log: log, recheck: resolvConfRecheck}
}

// Upstreams returns the current nameservers as UDP upstreams (port 53,
// retrying truncated answers over TCP), re-reading the file if it changed.
func (r *ResolvConf) Upstreams() []Upstream {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.checked.IsZero() && now.Sub(r.checked) < r.recheck {
		return r.ups
	}
	r.checked = now
	fi, err := os.Stat(r.path)
	if err != nil {
		if r.ups == nil || !errors.Is(err, fs.ErrNotExist) {
			r.log.Debug("dns: resolv.conf unreadable, keeping previous nameservers", "path", r.path, "err", err)
		}
		return r.ups
	}
	if fi.ModTime().Equal(r.mtime) && fi.Size() == r.size {
		return r.ups
	}
	addrs, err := readResolvConf(r.path)
	if err != nil {
		r.log.Warn("dns: reading resolv.conf, keeping previous nameservers", "err", err)
		return r.ups
	}
	r.mtime, r.size = fi.ModTime(), fi.Size()
	if len(addrs) == 0 {
		r.log.Warn("dns: no usable nameserver in resolv.conf, keeping previous ones", "path", r.path)
		return r.ups
	}
	r.replaceLocked(addrs)
	return r.ups
}

// replaceLocked installs the nameservers addrs, keeping the upstream (and
// its idle TCP connections) of every address already known.
func (r *ResolvConf) replaceLocked(addrs []netip.AddrPort) {
	old := make(map[string]*udpUpstream, len(r.closers))
	for _, u := range r.closers {
		old[u.addr] = u
	}
	ups := make([]Upstream, 0, len(addrs))
	closers := make([]*udpUpstream, 0, len(addrs))
	names := make([]string, 0, len(addrs))
	for _, ap := range addrs {
		u, ok := old[ap.String()]
		if ok {
			delete(old, ap.String())
		} else {
			u = newUDPUpstream(ap, r.opt)
		}
		ups, closers = append(ups, u), append(closers, u)
		names = append(names, u.String())
	}
	for _, u := range old {
		_ = u.Close()
	}
	r.ups, r.closers = ups, closers
	r.log.Info("dns: nameservers from resolv.conf", "path", r.path, "upstreams", names)
}

// Close closes idle connections.
func (r *ResolvConf) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.closers {
		_ = u.Close()
	}
	return nil
}

func readResolvConf(path string) ([]netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening resolv.conf: %w", err)
	}
	defer f.Close()
	addrs, err := parseResolvConf(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return addrs, nil
}

// parseResolvConf returns the distinct usable addresses of the nameserver
// lines, in order, with port 53. Other lines and unparsable addresses are
// ignored, as the C resolver does.
func parseResolvConf(rd io.Reader) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	seen := make(map[netip.AddrPort]bool)
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil {
			continue
		}
		a = a.Unmap()
		if a.IsLoopback() || a.IsUnspecified() {
			continue
		}
		ap := netip.AddrPortFrom(a, portDNS)
		if !seen[ap] {
			seen[ap] = true
			out = append(out, ap)
		}
	}
	return out, sc.Err()
}

// ResolvConfNameservers reads the usable nameservers of a resolv.conf-style
// file as ResolvConf would: loopback and unspecified ones skipped, port 53.
// A missing file gives an error wrapping fs.ErrNotExist.
func ResolvConfNameservers(path string) ([]netip.AddrPort, error) {
	return readResolvConf(path)
}
