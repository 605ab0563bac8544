package outbound

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// The association is a UDPConn (whose method set is udp.Upstream's; the
// guard against udp.Upstream itself belongs where the two are wired up,
// so this package's tests do not build the udp package).
var _ UDPConn = (*socksUDP)(nil)

var testClient = netip.MustParseAddrPort("198.18.1.2:5353")

// openUDP opens an association through proxy and closes it at cleanup.
func openUDP(t *testing.T, o Outbound) UDPConn {
	t.Helper()
	u, err := o.OpenUDP(context.Background(), testClient)
	if err != nil {
		t.Fatalf("OpenUDP: %v", err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

// udpExchange sends msg to dst through u and expects it back from dst.
func udpExchange(t *testing.T, u UDPConn, dst netip.AddrPort, msg string) {
	t.Helper()
	if n, err := u.WriteToUDPAddrPort([]byte(msg), dst); err != nil || n != len(msg) {
		t.Fatalf("WriteToUDPAddrPort = %d, %v; want %d, nil", n, err, len(msg))
	}
	_ = u.SetReadDeadline(time.Now().Add(failAfter))
	buf := make([]byte, 65535)
	n, from, err := u.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("ReadFromUDPAddrPort: %v", err)
	}
	if string(buf[:n]) != msg || from != dst {
		t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, msg, dst)
	}
}

func TestSOCKS5UDPRoundTrip(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startUDPEcho(t, srv, "127.0.0.1:0")
	echo2 := startUDPEcho(t, srv, "127.0.0.1:0")
	proxy := newFakeSOCKS(t, srv, nil)
	cfg := socksConfig(proxy.Addr)
	cfg.Username, cfg.Password = "bob", "pw" // not required by the proxy: it picks no-auth
	o := mustNew(t, cfg)
	u := openUDP(t, o)
	if _, ok := u.(syscall.Conn); !ok {
		t.Errorf("%T does not expose its socket (syscall.Conn)", u)
	}
	// Full cone: one association reaches several remotes, and each
	// reply names its real source.
	udpExchange(t, u, echo, "first")
	udpExchange(t, u, echo2, "second")
	udpExchange(t, u, echo, string(make([]byte, 60000)))
	if got := proxy.Targets(); len(got) != 1 || got[0] != "1:0.0.0.0:0" {
		t.Errorf("UDP ASSOCIATE asked for %v, want the all-zero address", got)
	}
	if st := o.Stats(); st.UDPActive != 1 || st.Dials != 1 || st.Failures.Total() != 0 {
		t.Errorf("stats = %+v, want one active association", st)
	}
	if err := u.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := o.Stats(); st.UDPActive != 0 {
		t.Errorf("UDPActive = %d after Close, want 0", st.UDPActive)
	}
	// Close told the proxy (the control connection closed), which ended
	// the relay; reads fail.
	waitFor(t, "the proxy to see the control connection close", func() bool {
		proxy.mu.Lock()
		defer proxy.mu.Unlock()
		_, err := proxy.relays[0].WriteToUDPAddrPort([]byte{0}, echo)
		return errors.Is(err, net.ErrClosed)
	})
	if _, _, err := u.ReadFromUDPAddrPort(make([]byte, 100)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v, want net.ErrClosed", err)
	}
}

// A proxy answering with an unspecified BND address relays on its own IP.
func TestSOCKS5UDPUnspecifiedBND(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startUDPEcho(t, srv, "127.0.0.1:0")
	proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.unspecBND = true })
	u := openUDP(t, mustNew(t, socksConfig(proxy.Addr)))
	udpExchange(t, u, echo, "via the proxy's own address")
	if got := u.(*socksUDP).relay.Addr(); got != proxy.Addr.Addr() {
		t.Errorf("relay address %s, want the proxy's %s", got, proxy.Addr.Addr())
	}
}

// Fragments and malformed datagrams from the relay are dropped and
// counted; the next proper datagram is delivered.
func TestSOCKS5UDPDrops(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startUDPEcho(t, srv, "127.0.0.1:0")
	extra := [][]byte{
		{0, 0, 1, 1, 127, 0, 0, 1, 0, 53, 'f', 'r', 'a', 'g'},    // FRAG 1
		{0, 0, 0x81, 1, 127, 0, 0, 1, 0, 53, 'l', 'a', 's', 't'}, // last fragment of a sequence
		{0, 0},                   // shorter than a header
		{0, 0, 0, 1, 127, 0},     // address cut short
		{0, 0, 0, 7, 1, 2, 3, 4}, // unknown ATYP
		{0, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 53, 'x'}, // domain source: not an address
		{}, // empty
	}
	proxy := newFakeSOCKS(t, srv, func(f *fakeSOCKS) { f.udpExtra = extra })
	o := mustNew(t, socksConfig(proxy.Addr))
	u := openUDP(t, o)
	udpExchange(t, u, echo, "the real one")
	st := o.Stats().UDPDropped
	if st.Fragments != 2 || st.Malformed != 5 {
		t.Errorf("dropped = %+v, want 2 fragments and 5 malformed", st)
	}
	// A domain that is an IP literal is an address.
	bad := [][]byte{{0, 0, 0, 3, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 53, 'x'}}
	frag, src, n, err := parseUDPHeader(bad[0])
	if ap, ok := src.addrPort(); err != nil || frag != 0 || n != 16 || !ok || ap != netip.MustParseAddrPort("127.0.0.1:53") {
		t.Errorf("parseUDPHeader(IP literal domain) = %d %v %d %v", frag, src, n, err)
	}
}

// The association ends when the proxy closes the control connection:
// reads fail at once, with ErrAssociationEnded.
func TestSOCKS5UDPControlClosed(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startUDPEcho(t, srv, "127.0.0.1:0")
	proxy := newFakeSOCKS(t, srv, nil)
	o := mustNew(t, socksConfig(proxy.Addr))
	u := openUDP(t, o)
	udpExchange(t, u, echo, "before")

	read := make(chan error, 1)
	go func() {
		_, _, err := u.ReadFromUDPAddrPort(make([]byte, 65535))
		read <- err
	}()
	proxy.closeControls()
	select {
	case err := <-read:
		if !errors.Is(err, ErrAssociationEnded) {
			t.Errorf("read error %v, want ErrAssociationEnded", err)
		}
	case <-time.After(failAfter):
		t.Fatal("read still blocked after the proxy closed the control connection")
	}
	waitFor(t, "UDPActive to drop", func() bool { return o.Stats().UDPActive == 0 })
	if _, err := u.WriteToUDPAddrPort([]byte("after"), echo); !errors.Is(err, ErrAssociationEnded) {
		t.Errorf("write after the end: %v, want ErrAssociationEnded", err)
	}
}

// A UDP ASSOCIATE reply with a relay address gatewayd cannot use fails
// the open cleanly.
func TestSOCKS5UDPBadRelay(t *testing.T) {
	checkGoroutines(t)
	tests := map[string][]byte{
		"domain relay": {5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0x10, 0},
		"port 0":       {5, 0, 0, 1, 127, 0, 0, 1, 0, 0},
	}
	for name, reply := range tests {
		t.Run(name, func(t *testing.T) {
			srv := newServers(t)
			addr := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) {
				if _, err := readFull(c, 3); err != nil {
					return
				}
				_, _ = c.Write([]byte{5, 0})
				if _, err := readFull(c, 10); err != nil {
					return
				}
				_, _ = c.Write(reply)
				hold(srv)
			})
			o := mustNew(t, socksConfig(addr))
			_, err := o.OpenUDP(context.Background(), testClient)
			expectKind(t, err, KindHandshake, "UDP relay address")
			if st := o.Stats(); st.UDPActive != 0 || st.Failures.Handshake != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}
