package outbound

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// After a successful handshake the conn has no deadline left: it stays
// usable past the handshake timeout (the relay's own timeouts govern it).
func TestHandshakeDeadlineCleared(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	socks := newFakeSOCKS(t, srv, nil)
	hp := newFakeHTTP(t, srv, nil)
	for _, cfg := range []Config{socksConfig(socks.Addr), httpConfig(hp.Addr)} {
		t.Run(cfg.Type, func(t *testing.T) {
			cfg.Timeout = shortTimeout
			c, err := mustNew(t, cfg).DialTCP(context.Background(), Dest{Addr: echo})
			if err != nil {
				t.Fatalf("DialTCP: %v", err)
			}
			defer c.Close()
			time.Sleep(shortTimeout + 100*time.Millisecond)
			if _, err := c.Write([]byte("late")); err != nil {
				t.Fatalf("write after the handshake timeout: %v", err)
			}
			buf := make([]byte, 4)
			if _, err := c.Read(buf); err != nil {
				t.Fatalf("read after the handshake timeout: %v", err)
			}
		})
	}
}

// Many dials and associations at once through one outbound: each gets its
// own stream, the gauges return to zero (run with -race).
func TestConcurrentDials(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	udpEcho := startUDPEcho(t, srv, "127.0.0.1:0")
	proxy := newFakeSOCKS(t, srv, nil)
	o := mustNew(t, socksConfig(proxy.Addr))
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := o.DialTCP(context.Background(), Dest{Addr: echo})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := fmt.Sprintf("stream %d", i)
			_ = c.SetDeadline(time.Now().Add(failAfter))
			if _, err := c.Write([]byte(msg)); err != nil {
				errs <- err
				return
			}
			buf := make([]byte, len(msg))
			if _, err := c.Read(buf); err != nil || string(buf) != msg {
				errs <- fmt.Errorf("stream %d echoed %q, %v", i, buf, err)
			}
		}()
		go func() {
			defer wg.Done()
			u, err := o.OpenUDP(context.Background(), testClient)
			if err != nil {
				errs <- err
				return
			}
			defer u.Close()
			msg := fmt.Sprintf("datagram %d", i)
			if _, err := u.WriteToUDPAddrPort([]byte(msg), udpEcho); err != nil {
				errs <- err
				return
			}
			_ = u.SetReadDeadline(time.Now().Add(failAfter))
			buf := make([]byte, 65535)
			m, from, err := u.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:m]) != msg || from != udpEcho {
				errs <- fmt.Errorf("association %d got %q from %s, %v", i, buf[:m], from, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := o.Stats()
	if st.Dials != 2*n || st.Dialing != 0 || st.UDPActive != 0 || st.Failures.Total() != 0 {
		t.Errorf("stats = %+v, want %d clean dials and nothing left open", st, 2*n)
	}
}

// A proxy that resets the connection mid-handshake is a handshake failure.
func TestHandshakeReset(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	addr := srv.listenTCP(t, "127.0.0.1:0", func(c *net.TCPConn) {
		if _, err := readFull(c, 3); err != nil { // the greeting
			return
		}
		_ = c.SetLinger(0)
		_ = c.Close()
	})
	_, err := mustNew(t, socksConfig(addr)).DialTCP(context.Background(), Dest{Addr: addr})
	expectKind(t, err, KindHandshake, "reading method selection")
}
