package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// sniffingServer relays to be with Sniff on and reports each Flow dialed.
func sniffingServer(t *testing.T, be *backend) (net.Addr, <-chan Flow) {
	flows := make(chan Flow, 4)
	d := flowDialer(func(ctx context.Context, f Flow) (*net.TCPConn, error) {
		flows <- f
		return DirectDialer{Timeout: failAfter}.DialTCP(ctx, Flow{Dst: be.ln.Addr().(*net.TCPAddr).AddrPort()})
	})
	_, addr := startServer(t, Config{Dialer: d, Sniff: true, SniffTimeout: 200 * time.Millisecond})
	return addr, flows
}

type flowDialer func(ctx context.Context, f Flow) (*net.TCPConn, error)

func (d flowDialer) DialTCP(ctx context.Context, f Flow) (*net.TCPConn, error) { return d(ctx, f) }

func nextFlow(t *testing.T, flows <-chan Flow) Flow {
	t.Helper()
	select {
	case f := <-flows:
		return f
	case <-time.After(failAfter):
		t.Fatal("no flow dialed")
		return Flow{}
	}
}

func TestSniffHTTPHostKeepsTheBytes(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	addr, flows := sniffingServer(t, be)
	c := dial(t, addr)
	req := "GET /x HTTP/1.1\r\nHost: Www.Example.COM:8080\r\nUser-Agent: t\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if f := nextFlow(t, flows); f.Domain != "www.example.com" || !f.Client.IsValid() || !f.Dst.IsValid() {
		t.Errorf("flow %+v, want domain www.example.com", f)
	}
	up := be.accept(t)
	got := make([]byte, len(req))
	_ = up.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := io.ReadFull(up, got); err != nil || string(got) != req {
		t.Fatalf("upstream got %q, %v; want the request unchanged", got, err)
	}
	expectTransfer(t, c, up, "after the sniffed prefix")
	expectTransfer(t, up, c, "reply")
}

func TestSniffTLSServerName(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	addr, flows := sniffingServer(t, be)
	c := dial(t, addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc := tls.Client(c, &tls.Config{ServerName: "sni.example.net", InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(failAfter))
		_ = tc.Handshake() // the backend is no TLS server: only the ClientHello matters
	}()
	if f := nextFlow(t, flows); f.Domain != "sni.example.net" {
		t.Errorf("domain %q, want sni.example.net", f.Domain)
	}
	up := be.accept(t)
	hdr := make([]byte, 5)
	_ = up.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := io.ReadFull(up, hdr); err != nil || hdr[0] != 0x16 {
		t.Fatalf("upstream got %x, %v; want the ClientHello record", hdr, err)
	}
	_ = up.Close()
	<-done
}

func TestSniffServerFirstProtocolStillRelays(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	addr, flows := sniffingServer(t, be)
	c := dial(t, addr) // says nothing: like SSH or SMTP, it waits for the banner
	if f := nextFlow(t, flows); f.Domain != "" {
		t.Errorf("domain %q for a silent client", f.Domain)
	}
	up := be.accept(t)
	expectTransfer(t, up, c, "SSH-2.0-banner\r\n")
	expectTransfer(t, c, up, "SSH-2.0-client\r\n")
}

func TestSniffUnknownProtocolRelaysUnchanged(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	addr, flows := sniffingServer(t, be)
	c := dial(t, addr)
	junk := bytes.Repeat([]byte{0xfe, 0x00, 0x7f}, 100)
	if _, err := c.Write(junk); err != nil {
		t.Fatal(err)
	}
	if f := nextFlow(t, flows); f.Domain != "" {
		t.Errorf("domain %q from junk", f.Domain)
	}
	up := be.accept(t)
	got := make([]byte, len(junk))
	_ = up.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := io.ReadFull(up, got); err != nil || !bytes.Equal(got, junk) {
		t.Fatalf("upstream got %d bytes, %v; want the junk unchanged", len(got), err)
	}
}
