package outbound

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// fakeSOCKS is an in-process SOCKS5 server (RFC 1928/1929), written
// independently of the client code: CONNECT dials for real and relays,
// UDP ASSOCIATE runs a real relay.
type fakeSOCKS struct {
	t    testing.TB
	srv  *servers
	Addr netip.AddrPort

	user, pass string                    // require username/password when user is set
	rep        byte                      // CONNECT/ASSOCIATE failure code to answer (0: succeed)
	names      map[string]netip.AddrPort // what domains "resolve" to
	banner     []byte                    // sent in the same write as a CONNECT success reply
	bnd        []byte                    // raw ATYP+ADDR+PORT for a CONNECT success reply (nil: the real one)
	unspecBND  bool                      // UDP ASSOCIATE answers 0.0.0.0:port
	udpExtra   [][]byte                  // raw datagrams the relay sends the client before each reply

	mu       sync.Mutex
	targets  []string       // CONNECT/ASSOCIATE addresses as received, "atyp:addr:port"
	methods  [][]byte       // offered methods per greeting
	controls []*net.TCPConn // control conns of UDP associations
	relays   []*net.UDPConn // their client-facing relay sockets
}

// newFakeSOCKS starts a fake server; configure sets its options before
// it runs.
func newFakeSOCKS(t testing.TB, srv *servers, configure func(*fakeSOCKS)) *fakeSOCKS {
	f := &fakeSOCKS{t: t, srv: srv, names: map[string]netip.AddrPort{}}
	if configure != nil {
		configure(f)
	}
	f.Addr = srv.listenTCP(t, "127.0.0.1:0", f.handle)
	return f
}

func (f *fakeSOCKS) handle(c *net.TCPConn) {
	if err := f.serve(c); err != nil {
		f.t.Logf("fake socks5: %v", err)
	}
	_ = c.Close()
}

// fakeAddr is an address as the fake server decodes it.
type fakeAddr struct {
	atyp   byte
	ip     netip.Addr
	domain string
	port   uint16
}

func (a fakeAddr) String() string {
	if a.atyp == atypDomain {
		return fmt.Sprintf("%d:%s:%d", a.atyp, a.domain, a.port)
	}
	return fmt.Sprintf("%d:%s:%d", a.atyp, a.ip, a.port)
}

func readFakeAddr(r io.Reader) (fakeAddr, error) {
	b, err := readFull(r, 1)
	if err != nil {
		return fakeAddr{}, err
	}
	a := fakeAddr{atyp: b[0]}
	switch a.atyp {
	case 1:
		b, err = readFull(r, 4)
		a.ip = netip.AddrFrom4([4]byte(b))
	case 4:
		b, err = readFull(r, 16)
		a.ip = netip.AddrFrom16([16]byte(b))
	case 3:
		if b, err = readFull(r, 1); err == nil {
			b, err = readFull(r, int(b[0]))
			a.domain = string(b)
		}
	default:
		return fakeAddr{}, fmt.Errorf("%w: atyp %d", errTestProtocol, a.atyp)
	}
	if err != nil {
		return fakeAddr{}, err
	}
	p, err := readFull(r, 2)
	if err != nil {
		return fakeAddr{}, err
	}
	a.port = binary.BigEndian.Uint16(p)
	return a, nil
}

// encodeFakeAddr encodes an IP address field (ATYP 1 or 4).
func encodeFakeAddr(ap netip.AddrPort) []byte {
	var b []byte
	if ap.Addr().Is4() {
		b = append([]byte{1}, ap.Addr().AsSlice()...)
	} else {
		b = append([]byte{4}, ap.Addr().AsSlice()...)
	}
	return binary.BigEndian.AppendUint16(b, ap.Port())
}

func (f *fakeSOCKS) serve(c *net.TCPConn) error {
	head, err := readFull(c, 2)
	if err != nil || head[0] != 5 {
		return fmt.Errorf("greeting: %v %v", head, err)
	}
	methods, err := readFull(c, int(head[1]))
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.methods = append(f.methods, methods)
	f.mu.Unlock()
	if err := f.auth(c, methods); err != nil {
		return err
	}
	req, err := readFull(c, 3)
	if err != nil || req[0] != 5 {
		return fmt.Errorf("request: %v %v", req, err)
	}
	dst, err := readFakeAddr(c)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.targets = append(f.targets, dst.String())
	f.mu.Unlock()
	if f.rep != 0 {
		_, err := c.Write([]byte{5, f.rep, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	switch req[1] {
	case 1:
		return f.connect(c, dst)
	case 3:
		return f.associate(c)
	}
	_, err = c.Write([]byte{5, 7, 0, 1, 0, 0, 0, 0, 0, 0})
	return err
}

func (f *fakeSOCKS) auth(c *net.TCPConn, methods []byte) error {
	if f.user == "" {
		if !slices.Contains(methods, 0) {
			_, _ = c.Write([]byte{5, 0xff})
			return fmt.Errorf("%w: no-auth not offered", errTestProtocol)
		}
		_, err := c.Write([]byte{5, 0})
		return err
	}
	if !slices.Contains(methods, 2) {
		_, _ = c.Write([]byte{5, 0xff})
		return fmt.Errorf("%w: username/password not offered", errTestProtocol)
	}
	if _, err := c.Write([]byte{5, 2}); err != nil {
		return err
	}
	ver, err := readFull(c, 2)
	if err != nil || ver[0] != 1 {
		return fmt.Errorf("auth: %v %v", ver, err)
	}
	user, err := readFull(c, int(ver[1]))
	if err != nil {
		return err
	}
	plen, err := readFull(c, 1)
	if err != nil {
		return err
	}
	pass, err := readFull(c, int(plen[0]))
	if err != nil {
		return err
	}
	if string(user) != f.user || string(pass) != f.pass {
		_, _ = c.Write([]byte{1, 1})
		return fmt.Errorf("%w: bad credentials %q/%q", errTestProtocol, user, pass)
	}
	_, err = c.Write([]byte{1, 0})
	return err
}

func (f *fakeSOCKS) connect(c *net.TCPConn, dst fakeAddr) error {
	to := netip.AddrPortFrom(dst.ip, dst.port)
	if dst.atyp == atypDomain {
		ap, ok := f.names[dst.domain]
		if !ok {
			_, err := c.Write([]byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0})
			return err
		}
		to = ap
	}
	up, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(to))
	if err != nil {
		_, _ = c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
		return err
	}
	if !f.srv.track(up) {
		return nil
	}
	bnd := f.bnd
	if bnd == nil {
		bnd = encodeFakeAddr(up.LocalAddr().(*net.TCPAddr).AddrPort())
	}
	reply := append(append([]byte{5, 0, 0}, bnd...), f.banner...)
	if _, err := c.Write(reply); err != nil {
		return err
	}
	relay(c, up)
	return nil
}

func (f *fakeSOCKS) associate(c *net.TCPConn) error {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	out, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = rc.Close()
		return err
	}
	f.srv.track(rc)
	f.srv.track(out)
	f.mu.Lock()
	f.controls = append(f.controls, c)
	f.relays = append(f.relays, rc)
	f.mu.Unlock()
	bnd := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	if f.unspecBND {
		bnd = netip.AddrPortFrom(netip.IPv4Unspecified(), bnd.Port())
	}
	if _, err := c.Write(append([]byte{5, 0, 0}, encodeFakeAddr(bnd)...)); err != nil {
		return err
	}
	var client struct {
		sync.Mutex
		ap netip.AddrPort
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // client -> remote
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := rc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			client.Lock()
			client.ap = from
			client.Unlock()
			r := &byteReader{b: buf[:n]}
			hdr, err := readFull(r, 3)
			if err != nil || hdr[2] != 0 {
				continue
			}
			dst, err := readFakeAddr(r)
			if err != nil {
				continue
			}
			_, _ = out.WriteToUDPAddrPort(r.b, netip.AddrPortFrom(dst.ip, dst.port))
		}
	}()
	go func() { // remote -> client
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			n, from, err := out.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			client.Lock()
			to := client.ap
			client.Unlock()
			for _, d := range f.udpExtra {
				_, _ = rc.WriteToUDPAddrPort(d, to)
			}
			d := append(append([]byte{0, 0, 0}, encodeFakeAddr(from)...), buf[:n]...)
			_, _ = rc.WriteToUDPAddrPort(d, to)
		}
	}()
	// The association lives as long as the control connection.
	_, _ = io.Copy(io.Discard, c)
	_ = rc.Close()
	_ = out.Close()
	wg.Wait()
	return nil
}

// closeControls closes the control conns of all associations, as a proxy
// ending them would.
func (f *fakeSOCKS) closeControls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.controls {
		_ = c.Close()
	}
}

func (f *fakeSOCKS) Targets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.targets)
}

// byteReader reads from b, keeping the rest in b.
type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
