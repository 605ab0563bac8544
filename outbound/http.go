package outbound

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// HTTP status codes the CONNECT handling tells apart (RFC 9110 sec. 15).
const (
	// statusUnauthorized is what tinyproxy (1.11) answers a CONNECT with
	// wrong Basic credentials (407 only when there are none), so it is
	// an authentication failure too.
	statusUnauthorized   = 401
	statusForbidden      = 403
	statusProxyAuthReq   = 407
	statusGatewayTimeout = 504
)

// httpProxy tunnels TCP through an HTTP proxy with CONNECT (RFC 9110 sec.
// 9.3.6). It cannot carry UDP.
type httpProxy struct {
	proxy
	auth string // Proxy-Authorization value, or ""
}

func newHTTP(cfg Config) *httpProxy {
	h := &httpProxy{proxy: newProxy(cfg, "http")}
	if cfg.Username != "" {
		h.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password))
	}
	return h
}

// hostPort is the CONNECT target: domain:port when preferred and
// sendable, else ip:port ([ip6]:port).
func (h *httpProxy) hostPort(dst Dest) string {
	port := strconv.Itoa(int(dst.Addr.Port()))
	if h.preferNames {
		if name, ok := proxyHostName(dst.Domain); ok {
			return net.JoinHostPort(name, port)
		}
	}
	return net.JoinHostPort(dst.Addr.Addr().Unmap().WithZone("").String(), port)
}

// DialTCP implements Outbound.
func (h *httpProxy) DialTCP(ctx context.Context, dst Dest) (*net.TCPConn, error) {
	h.stats.begin()
	c, err := h.connect(ctx, dst, func(c *net.TCPConn) error { return h.tunnel(c, h.hostPort(dst)) })
	return c, h.stats.end(err)
}

// tunnel sends the CONNECT request and reads the response, exactly.
func (h *httpProxy) tunnel(c net.Conn, target string) error {
	if _, err := c.Write(connectRequest(target, h.auth)); err != nil {
		return kinded(ErrHandshake, "%s: sending CONNECT %s: %w", h.desc, target, err)
	}
	code, line, err := readConnectResponse(c)
	if err != nil {
		return kinded(ErrHandshake, "%s: reading the response to CONNECT %s: %w", h.desc, target, err)
	}
	if code >= 200 && code < 300 {
		return nil
	}
	kind, note := ErrProxy, ""
	switch code {
	case statusProxyAuthReq, statusUnauthorized:
		kind, note = ErrAuth, " (no credentials configured)"
		if h.auth != "" {
			note = " (credentials rejected)"
		}
	case statusForbidden:
		kind = ErrRefused
	case statusGatewayTimeout:
		kind = ErrTimeout
	}
	return kinded(kind, "%s refused CONNECT to %s: %s%s", h.desc, target, line, note)
}

// OpenUDP implements Outbound: always ErrUnsupported.
func (h *httpProxy) OpenUDP(_ context.Context, client netip.AddrPort) (UDPConn, error) {
	h.stats.begin()
	return nil, h.stats.end(fmt.Errorf("outbound %q: UDP from %s: %s carries only TCP: %w", h.name, client, h.desc, ErrUnsupported))
}
