package tcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/listen"
	"golang.org/x/sys/unix"
)

func TestServerRelaysToOriginalDestination(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	dsts := make(chan netip.AddrPort, 1)
	s, addr := startServer(t, Config{Dialer: be.dialer(dsts)})

	client := dial(t, addr)
	up := be.accept(t)
	if got, want := <-dsts, addr.(*net.TCPAddr).AddrPort(); got != want {
		t.Errorf("dialed %s, want the client's destination %s", got, want)
	}
	expectTransfer(t, client, up, "ping")
	expectTransfer(t, up, client, "pong!")
	_ = client.Close()
	_ = up.Close()
	waitFor(t, "flow end", func() bool { return s.Stats().Active == 0 && s.Stats().BytesDown > 0 })
	want := Stats{Accepted: 1, BytesUp: 4, BytesDown: 5}
	got := s.Stats()
	got.PipesSpare = 0 // a spare pipe may be kept for the next flow
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestServerConnLimitResetsAtOnce(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s, addr := startServer(t, Config{Dialer: be.dialer(nil), MaxConns: 1})

	first := dial(t, addr)
	up := be.accept(t)
	expectTransfer(t, first, up, "held")

	expectRefused(t, addr)
	if st := s.Stats(); st.Rejected != 1 || st.Active != 1 {
		t.Errorf("Stats = %+v, want 1 rejected, 1 active", st)
	}

	_ = first.Close()
	_ = up.Close()
	waitFor(t, "first flow end", func() bool { return s.Stats().Active == 0 })
	again := dial(t, addr)
	expectTransfer(t, again, be.accept(t), "room again")
}

func TestServerDialFailureResetsClient(t *testing.T) {
	checkGoroutines(t)
	closed := listenLoopback(t)
	refused := closed.Addr().(*net.TCPAddr).AddrPort()
	_ = closed.Close()
	dialer := dialerFunc(func(ctx context.Context, _ netip.AddrPort) (*net.TCPConn, error) {
		return DirectDialer{Timeout: failAfter}.DialTCP(ctx, Flow{Dst: refused})
	})
	s, addr := startServer(t, Config{Dialer: dialer})

	expectRefused(t, addr)
	waitFor(t, "flow end", func() bool { return s.Stats().Active == 0 })
	if st := s.Stats(); st.DialFailed != 1 || st.Accepted != 1 {
		t.Errorf("Stats = %+v, want 1 accepted, 1 dial failure", st)
	}
}

func TestServerLoopGuardRefusesOwnAddress(t *testing.T) {
	checkGoroutines(t)
	dialed := make(chan netip.AddrPort, 1)
	s := New(Config{Dialer: dialerFunc(func(context.Context, netip.AddrPort) (*net.TCPConn, error) {
		dialed <- netip.AddrPort{}
		return nil, errors.New("must not dial")
	})}, testLogger(t))
	ln := listenLoopback(t)
	if err := s.addListeners(ln); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	// The conn's local address is the listener address: a flow to ourselves.
	expectRefused(t, ln.Addr())
	waitFor(t, "flow end", func() bool { return s.Stats().Active == 0 })
	s.Shutdown(0)
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if st := s.Stats(); st.LoopRefused != 1 || len(dialed) != 0 {
		t.Errorf("Stats = %+v, dialed %d times; want 1 loop refused, no dial", st, len(dialed))
	}
}

func TestShutdownWaitsForFlowsThenServeReturns(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s := New(Config{Dialer: be.dialer(nil)}, testLogger(t))
	ln := listenLoopback(t)
	s.listeners = append(s.listeners, ln)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	client := dial(t, ln.Addr())
	up := be.accept(t)
	expectTransfer(t, client, up, "before shutdown")

	shutdown := make(chan struct{})
	go func() { s.Shutdown(failAfter); close(shutdown) }()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Serve did not return after Shutdown")
	}
	// Accepting has stopped but the flow still relays during the grace period.
	if _, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr)); err == nil {
		t.Error("listener still accepts after Shutdown")
	}
	expectTransfer(t, up, client, "during grace")
	_ = client.Close()
	_ = up.Close()
	select {
	case <-shutdown:
	case <-time.After(failAfter):
		t.Fatal("Shutdown did not return after the last flow ended")
	}
}

func TestShutdownResetsFlowsAfterGrace(t *testing.T) {
	checkGoroutines(t)
	be := newBackend(t)
	s := New(Config{Dialer: be.dialer(nil)}, testLogger(t))
	ln := listenLoopback(t)
	s.listeners = append(s.listeners, ln)
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()

	client := dial(t, ln.Addr())
	up := be.accept(t)
	expectTransfer(t, client, up, "held open")

	s.Shutdown(0)
	expectReset(t, client)
	expectReset(t, up)
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("Active = %d after Shutdown", st.Active)
	}
	if err := s.Serve(); err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
}

func TestShutdownAbortsDialInProgress(t *testing.T) {
	checkGoroutines(t)
	dialing := make(chan struct{})
	dialer := dialerFunc(func(ctx context.Context, _ netip.AddrPort) (*net.TCPConn, error) {
		close(dialing)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s, addr := startServer(t, Config{Dialer: dialer})
	client := dial(t, addr)
	<-dialing
	s.Shutdown(0)
	expectReset(t, client)
	if st := s.Stats(); st.DialFailed != 0 {
		t.Errorf("DialFailed = %d, want 0 for a dial aborted by Shutdown", st.DialFailed)
	}
}

func TestServeWithoutListen(t *testing.T) {
	if err := New(Config{}, nil).Serve(); err == nil {
		t.Error("Serve without listeners succeeded")
	}
}

func TestIsTemporaryAccept(t *testing.T) {
	for err, want := range map[error]bool{
		&net.OpError{Op: "accept", Err: errEMFILE()}: true,
		net.ErrClosed:          false,
		errors.New("whatever"): false,
	} {
		if got := listen.IsOneOf(err, temporaryAcceptErrors); got != want {
			t.Errorf("listen.IsOneOf(%v, temporaryAcceptErrors) = %v, want %v", err, got, want)
		}
	}
}

func errEMFILE() error { return os.NewSyscallError("accept4", unix.EMFILE) }

// BenchmarkServerShortFlows: one op is a whole short flow through the
// server on loopback (accept, dial, a request and its answer, both closes),
// 32 clients at a time, as the scale bench's connection-rate cell does in
// the lab.
func BenchmarkServerShortFlows(b *testing.B) {
	ln := listenLoopback(b)
	go func() { // the upstream: answer each request, then close
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				if _, err := c.Read(buf); err == nil {
					_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
			}()
		}
	}()
	up := ln.Addr().(*net.TCPAddr).AddrPort()
	s := New(Config{Dialer: dialerFunc(func(ctx context.Context, _ netip.AddrPort) (*net.TCPConn, error) {
		return DirectDialer{Timeout: failAfter}.DialTCP(ctx, Flow{Dst: up})
	})}, nil)
	front := listenLoopback(b)
	s.listeners = append(s.listeners, front)
	go func() { _ = s.Serve() }()
	b.Cleanup(func() { s.Shutdown(0) })
	addr := front.Addr().(*net.TCPAddr)
	b.SetParallelism(16) // 32 clients on 2 CPUs
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 128)
		for pb.Next() {
			c, err := net.DialTCP("tcp", nil, addr)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			c.Close()
		}
	})
}
