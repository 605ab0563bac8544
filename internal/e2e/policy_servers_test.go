package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// Ports of the HTTP and HTTPS test servers in the server namespace.
const (
	whoHTTPPort  = 8080
	whoHTTPSPort = 8443
)

// who is what a "who" server saw of a request.
type who struct {
	Peer      netip.Addr // the TCP peer: the gateway, a proxy or the client
	Host, SNI string     // the Host header; the TLS server name ("" for HTTP)
}

// serveWho serves HTTP, or HTTPS with a self-signed certificate, on addr
// in ns: every response is "PEER <peer> HOST <host> SNI <sni>\n".
func serveWho(t *testing.T, ns *netlab.NS, addr netip.AddrPort, useTLS bool) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.Name, err)
	}
	if useTLS {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}})
	}
	srv := &http.Server{
		ReadHeaderTimeout: ioGuard,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer, _ := netip.ParseAddrPort(r.RemoteAddr)
			sni := ""
			if r.TLS != nil {
				sni = r.TLS.ServerName
			}
			fmt.Fprintf(w, "PEER %s HOST %s SNI %s\n", peer.Addr().Unmap(), r.Host, sni)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// selfSigned makes a certificate for *.test names; the clients do not
// verify it (curl -k): the tests are about the server name the client
// sends, not about trust.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gatewayd e2e"},
		DNSNames:     []string{"*.test", "*.example.test", "*.sni.example.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// curlWho runs curl in the client namespace with args (ending in the
// URL) against a who server and returns what the server saw.
func curlWho(t *testing.T, lab *netlab.Lab, args ...string) who {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*ioGuard)
	defer cancel()
	argv := append([]string{"-sS", "--max-time", fmt.Sprint(int(ioGuard / time.Second))}, args...)
	out, err := lab.Client.Run(ctx, "curl", argv...)
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	var w who
	var peer string
	if _, err := fmt.Sscanf(strings.ReplaceAll(out, "SNI \n", "SNI -\n"), "PEER %s HOST %s SNI %s\n", &peer, &w.Host, &w.SNI); err != nil {
		t.Fatalf("curl %s: unexpected answer %q: %v", strings.Join(args, " "), out, err)
	}
	if w.SNI == "-" {
		w.SNI = ""
	}
	if w.Peer, err = netip.ParseAddr(peer); err != nil {
		t.Fatalf("curl %s: bad peer in %q", strings.Join(args, " "), out)
	}
	return w
}

// countingUDPEcho is a UDP echo server (serveUDPEcho's protocol) that
// counts the datagrams it received, so a test can tell "dropped on the
// way" from "answer lost".
func countingUDPEcho(t *testing.T, ns *netlab.NS, addr netip.AddrPort) *atomic.Int64 {
	t.Helper()
	c := listenUDP(t, ns, addr)
	var n atomic.Int64
	go func() {
		buf := make([]byte, 1<<16)
		for {
			m, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.Add(1)
			reply := append([]byte(fmt.Sprintf("PEER %s|", unmapAP(src))), buf[:m]...)
			_, _ = c.WriteToUDPAddrPort(reply, src)
		}
	}()
	return &n
}

// dropWait is how long a test waits for the reply to a datagram that
// should be dropped: a relayed one comes back within milliseconds.
const dropWait = time.Second

// expectNoReply sends each payload to dst from c and requires that
// nothing comes back within dropWait.
func expectNoReply(t *testing.T, c *net.UDPConn, dst netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	for _, p := range payloads {
		if _, err := c.WriteToUDPAddrPort(p, dst); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(dropWait))
	buf := make([]byte, 2048)
	if n, src, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Errorf("datagram to %s: got %q from %s, want it dropped", dst, buf[:n], src)
	}
}
