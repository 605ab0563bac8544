package dns

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/gatewayd/gatewayd/internal/sockopt"
)

// Upstream is a resolver that answers forwarded queries. Exchange must be
// safe for concurrent use, must honour ctx's deadline, and returns the
// answer as received (any rcode); it does not retry elsewhere.
type Upstream interface {
	Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
	String() string
}

// UpstreamOptions are the settings every upstream of a Handler shares.
type UpstreamOptions struct {
	// Mark is the SO_MARK of every upstream socket, so gatewayd's own
	// queries bypass its interception. 0 sets no mark.
	Mark uint32
	// TLSConfig is the base of every DoT upstream's TLS configuration
	// (e.g. RootCAs). nil: the system roots. The upstream's server name
	// is filled in per upstream.
	TLSConfig *tls.Config
}

// Default ports per upstream scheme.
const (
	portDNS = 53  // RFC 1035 (UDP and TCP)
	portDoT = 853 // RFC 7858
)

// exchangeBackstop bounds an exchange whose context carries no deadline.
// Groups always set one (Config.Timeout), so this only matters for an
// Upstream used on its own. miekg's Client would otherwise cap every read
// and write at its own 2 s default, silently overriding longer timeouts.
const exchangeBackstop = 30 * time.Second

// upstreamEDNSSize is the EDNS UDP payload size advertised upstream and to
// clients: the DNS Flag Day 2020 value, which fits an IPv6 packet in the
// 1280-byte minimum MTU, so answers are never IP-fragmented. Larger answers
// come back with TC=1 and are fetched again over TCP.
const upstreamEDNSSize = 1232

// ParseUpstream parses an upstream spec:
//
//	udp://198.19.0.53:53        plain DNS over UDP; truncated answers are retried over TCP
//	tcp://[2001:2::53]:53       plain DNS over TCP
//	tls://198.19.0.53:853#dns.example   DNS over TLS, verifying the name after '#'
//	198.19.0.53                 the same as udp://198.19.0.53:53
//
// The host must be an IP address: a resolver's own name cannot be looked up
// before there is a resolver. The port defaults to 53 (853 for tls). A tls
// spec without "#name" verifies the certificate against the IP address.
func ParseUpstream(spec string, opt UpstreamOptions) (Upstream, error) {
	scheme, rest, ok := strings.Cut(spec, "://")
	if !ok {
		scheme, rest = "udp", spec
	}
	rest, serverName, hasName := strings.Cut(rest, "#")
	defPort := uint16(portDNS)
	switch scheme {
	case "udp", "tcp":
		if hasName {
			return nil, fmt.Errorf("upstream %q: a #server name needs tls://", spec)
		}
	case "tls":
		defPort = portDoT
		if hasName && serverName == "" {
			return nil, fmt.Errorf("upstream %q: empty server name after #", spec)
		}
	default:
		return nil, fmt.Errorf("upstream %q: unknown scheme %q (want udp, tcp or tls)", spec, scheme)
	}
	ap, err := parseHostPort(rest, defPort)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", spec, err)
	}
	switch scheme {
	case "udp":
		return newUDPUpstream(ap, opt), nil
	case "tcp":
		return newStreamUpstream("tcp", ap, "", opt), nil
	default:
		return newStreamUpstream("tcp-tls", ap, serverName, opt), nil
	}
}

// parseHostPort accepts "ip", "ip:port", "[ipv6]" and "[ipv6]:port".
func parseHostPort(s string, defPort uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Port() == 0 {
			return netip.AddrPort{}, errors.New("port 0")
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	a, err := netip.ParseAddr(host)
	if err != nil {
		if h, p, serr := net.SplitHostPort(s); serr == nil {
			if _, perr := strconv.ParseUint(p, 10, 16); perr != nil {
				return netip.AddrPort{}, fmt.Errorf("bad port %q", p)
			}
			return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address", h)
		}
		return netip.AddrPort{}, fmt.Errorf("host %q is not an IP address", s)
	}
	return netip.AddrPortFrom(a.Unmap(), defPort), nil
}

// markedDialer returns the dialer of every upstream socket.
func markedDialer(mark uint32) *net.Dialer {
	return &net.Dialer{Control: sockopt.Chain(sockopt.Mark(mark))}
}

// udpUpstream is plain DNS over UDP with the TCP retry miekg's Client does
// not do itself.
type udpUpstream struct {
	addr   string
	client *dns.Client
	tcp    *streamUpstream // for answers with TC=1
}

func newUDPUpstream(ap netip.AddrPort, opt UpstreamOptions) *udpUpstream {
	return &udpUpstream{
		addr:   ap.String(),
		client: &dns.Client{Net: "udp", Dialer: markedDialer(opt.Mark), Timeout: exchangeBackstop},
		tcp:    newStreamUpstream("tcp", ap, "", opt),
	}
}

func (u *udpUpstream) String() string { return "udp://" + u.addr }

// Exchange implements Upstream.
func (u *udpUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	r, _, err := u.client.ExchangeContext(ctx, m, u.addr)
	switch {
	case errors.Is(err, dns.ErrBuf):
		// A datagram larger than the advertised EDNS size (a server that
		// ignores it) is cut to the buffer and does not decode; TCP
		// carries it whole.
	case err != nil:
		return nil, fmt.Errorf("querying %s: %w", u, err)
	case !r.Truncated:
		return r, nil
	}
	r, err = u.tcp.Exchange(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("retrying over TCP: %w", err)
	}
	return r, nil
}

// streamUpstream is DNS over TCP or TLS, reusing idle connections.
type streamUpstream struct {
	name   string // String()
	addr   string
	client *dns.Client
	pool   connPool
}

// newStreamUpstream returns a TCP (network "tcp") or DoT ("tcp-tls")
// upstream. serverName is used only for DoT.
func newStreamUpstream(network string, ap netip.AddrPort, serverName string, opt UpstreamOptions) *streamUpstream {
	s := &streamUpstream{
		name:   "tcp://" + ap.String(),
		addr:   ap.String(),
		client: &dns.Client{Net: network, Dialer: markedDialer(opt.Mark), Timeout: exchangeBackstop},
	}
	if network == "tcp-tls" {
		s.name = "tls://" + ap.String()
		var tc *tls.Config
		if opt.TLSConfig != nil {
			tc = opt.TLSConfig.Clone()
		} else {
			tc = new(tls.Config)
		}
		if serverName != "" {
			tc.ServerName = serverName
			s.name += "#" + serverName
		}
		tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12) // RFC 8310 §8.1
		if tc.ClientSessionCache == nil {
			// Resumption makes reconnecting after an idle close cheap.
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
		s.client.TLSConfig = tc
	}
	return s
}

func (s *streamUpstream) String() string { return s.name }

// Exchange implements Upstream. A pooled connection the server closed while
// idle fails at once; the query is then sent again, on a fresh connection
// once the pool has run dry.
func (s *streamUpstream) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	for {
		co, reused, err := s.pool.get(ctx, s.client, s.addr)
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", s, err)
		}
		r, _, err := s.client.ExchangeWithConnContext(ctx, m, co)
		if err == nil {
			s.pool.put(co)
			return r, nil
		}
		_ = co.Close()
		if !reused || ctx.Err() != nil {
			return nil, fmt.Errorf("querying %s: %w", s, err)
		}
	}
}

// Close closes the idle connections.
func (s *streamUpstream) Close() error { return s.pool.close() }

// Close closes the TCP retry path's idle connections.
func (u *udpUpstream) Close() error { return u.tcp.Close() }
