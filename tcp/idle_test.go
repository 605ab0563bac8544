package tcp

import (
	"net"
	"testing"
	"time"
)

func TestIdleRemaining(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		quiet  []time.Duration
		wait   time.Duration
		active bool
	}{
		{"both quiet", []time.Duration{timeout, 5 * timeout}, 0, false},
		{"one side busy", []time.Duration{5 * timeout, 30 * time.Millisecond}, 170 * time.Millisecond, true},
		{"other side busy", []time.Duration{0, 5 * timeout}, timeout, true},
		{"almost idle: floor", []time.Duration{timeout - time.Millisecond, timeout}, idleRecheckFloor, true},
		{"no sockets", nil, 0, false},
	} {
		wait, active := idleRemaining(timeout, tc.quiet...)
		if wait != tc.wait || active != tc.active {
			t.Errorf("%s: idleRemaining(%v) = %v, %v; want %v, %v", tc.name, tc.quiet, wait, active, tc.wait, tc.active)
		}
	}
}

func TestSinceDataRecv(t *testing.T) {
	a, b := tcpPair(t)
	expectTransfer(t, a, b, "x")
	got, err := sinceDataRecv(b)
	if err != nil {
		t.Fatalf("sinceDataRecv: %v", err)
	}
	if got < 0 || got > failAfter {
		t.Errorf("sinceDataRecv just after a read = %v", got)
	}
	_ = b.Close()
	if _, err := sinceDataRecv(b); err == nil {
		t.Error("sinceDataRecv on a closed conn succeeded")
	}
}

// The idle timer of a flow whose other socket just received data is pushed
// forward, not treated as idle.
func TestIdleTimerExtendsWhileOtherSocketReceives(t *testing.T) {
	_, c2 := tcpPair(t)
	u1, u2 := tcpPair(t)
	w := idleTimer{timeout: time.Minute}
	conns := [2]*net.TCPConn{c2, u1}
	expectTransfer(t, u2, u1, "data on the upstream socket")
	if _, active := w.remaining(conns); !active {
		t.Fatal("flow with fresh data reported idle")
	}
	w.timeout = 0
	if _, active := w.remaining(conns); active {
		t.Error("timer without timeout reported active")
	}
}
