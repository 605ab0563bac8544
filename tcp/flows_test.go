package tcp

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func addrPort(a net.Addr) netip.AddrPort { return a.(*net.TCPAddr).AddrPort() }

// sendThrough writes msg on a sniffing server's client before the upstream
// exists (the server dials only once it has the first bytes), then expects
// the backend to receive it. It returns the backend's end.
func sendThrough(t *testing.T, client *net.TCPConn, be *backend, msg string) *net.TCPConn {
	t.Helper()
	if _, err := client.Write([]byte(msg)); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	up := be.accept(t)
	_ = up.SetReadDeadline(time.Now().Add(failAfter))
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(up, buf); err != nil || string(buf) != msg {
		t.Fatalf("backend got %q, %v; want %q", buf, err, msg)
	}
	return up
}

func TestFlowsListsActiveFlowWithBytes(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s, addr := startServer(t, Config{Dialer: be.dialer(nil)})
	if got := s.Flows(); len(got) != 0 {
		t.Fatalf("Flows before any client = %+v, want none", got)
	}
	before := time.Now()
	client := dial(t, addr)
	up := be.accept(t)
	expectTransfer(t, client, up, "hello")
	expectTransfer(t, up, client, "world!!")

	// The client's ACK of the 7 bytes may be delayed; wait for it.
	var f FlowInfo
	waitFor(t, "the flow's bytes", func() bool {
		flows := s.Flows()
		if len(flows) != 1 {
			t.Fatalf("Flows = %+v, want one flow", flows)
		}
		f = flows[0]
		return f.BytesDown == 7
	})
	want := FlowInfo{
		Client:    addrPort(client.LocalAddr()),
		Dst:       addrPort(addr),
		Start:     f.Start,
		Connected: true,
		BytesUp:   5,
		BytesDown: 7,
	}
	if f != want {
		t.Errorf("flow = %+v, want %+v", f, want)
	}
	if f.Start.Before(before) || f.Start.After(time.Now()) {
		t.Errorf("flow start %v is not between the dial (%v) and now", f.Start, before)
	}

	_ = client.Close()
	_ = up.Close()
	waitFor(t, "flow end", func() bool { return len(s.Flows()) == 0 })
}

func TestFlowsDomainOnceSniffed(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s, addr := startServer(t, Config{Dialer: be.dialer(nil), Sniff: true, SniffTimeout: failAfter})
	client := dial(t, addr)
	// Nothing sent yet: the server waits for the first bytes.
	waitFor(t, "the flow to be listed", func() bool { return len(s.Flows()) == 1 })
	if f := s.Flows()[0]; f.Connected || f.Domain != "" {
		t.Errorf("flow being sniffed = %+v, want not connected, no domain", f)
	}
	req := "GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n"
	sendThrough(t, client, be, req)
	f := s.Flows()[0]
	if !f.Connected || f.Domain != "www.example.test" || f.BytesUp != uint64(len(req)) {
		t.Errorf("flow after sniffing = %+v, want connected, domain www.example.test, %d bytes up", f, len(req))
	}
}

// TestFlowsConcurrent lists flows while others start and end; the race
// detector checks the listing's reads.
func TestFlowsConcurrent(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s, addr := startServer(t, Config{Dialer: be.dialer(nil), Sniff: true, SniffTimeout: failAfter})
	const flows = 20
	stop := make(chan struct{})
	var lister sync.WaitGroup
	lister.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, f := range s.Flows() {
				if !f.Client.IsValid() || f.Dst != addrPort(addr) {
					t.Errorf("listed flow %+v: want a client and destination %s", f, addr)
				}
			}
		}
	})
	for range flows {
		c := dial(t, addr)
		up := sendThrough(t, c, be, "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n")
		_ = c.Close()
		_ = up.Close()
	}
	close(stop)
	lister.Wait()
	waitFor(t, "every flow to end", func() bool { return len(s.Flows()) == 0 })
	if st := s.Stats(); st.Accepted != flows {
		t.Errorf("accepted %d flows, want %d", st.Accepted, flows)
	}
}

// TestSocketBytesClosed: a closed socket reports zeros, not an error or a
// panic.
func TestSocketBytesClosed(t *testing.T) {
	c, _ := tcpPair(t)
	_ = c.Close()
	if up, down := socketBytes(c); up != 0 || down != 0 {
		t.Errorf("closed socket: %d, %d bytes, want 0, 0", up, down)
	}
}
