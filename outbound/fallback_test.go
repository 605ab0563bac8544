package outbound

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock is a settable clock for the log limiter.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A dead primary proxy fails over to direct; a burst of failures logs one
// line, the next line (a window later) counts the ones held back.
func TestFallback(t *testing.T) {
	checkGoroutines(t)
	srv := newServers(t)
	echo := startEcho(t, srv, "127.0.0.1:0")
	udpEcho := startUDPEcho(t, srv, "127.0.0.1:0")
	primary := mustNew(t, socksConfig(closedPort(t)))
	secondary := mustNew(t, directConfig())
	var logs logBuffer
	f := NewFallback(primary, secondary, slog.New(slog.NewTextHandler(&logs, nil)))
	clock := &fakeClock{now: time.Unix(1000, 0)}
	f.limit.Now = clock.Now
	if f.Name() != "proxy" {
		t.Errorf("Name() = %q, want the primary's", f.Name())
	}

	const burst = 5
	for i := range burst {
		c, err := f.DialTCP(context.Background(), Dest{Addr: echo})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		expectEcho(t, c, "via the fallback")
		_ = c.Close()
		clock.Advance(time.Second)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines for a burst, want 1:\n%s", len(lines), logs.String())
	}
	for _, want := range []string{"level=WARN", "outbound=proxy", "fallback=wan", "proto=tcp", "kind=refused", "suppressed=0", "dialing socks5 proxy"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}

	clock.Advance(fallbackLogEvery)
	u, err := f.OpenUDP(context.Background(), testClient)
	if err != nil {
		t.Fatalf("OpenUDP: %v", err)
	}
	udpExchange(t, u, udpEcho, "udp via the fallback")
	_ = u.Close()
	lines = strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], fmt.Sprintf("suppressed=%d", burst-1)) || !strings.Contains(lines[1], "proto=udp") {
		t.Errorf("second window logged:\n%s\nwant one more line with suppressed=%d", logs.String(), burst-1)
	}

	st := f.Stats()
	if st.Dials != burst+1 || st.Fallbacks != burst+1 || st.Failures.Total() != 0 {
		t.Errorf("fallback stats = %+v, want %d dials all served by the fallback", st, burst+1)
	}
	if ps := primary.Stats(); ps.Failures.Refused != burst+1 {
		t.Errorf("primary stats = %+v, want %d refused", ps, burst+1)
	}
}

// When both fail, the error is the fallback's (for its kind) and mentions
// the primary's; a cancelled context does not fall back.
func TestFallbackFailures(t *testing.T) {
	checkGoroutines(t)
	primary := mustNew(t, socksConfig(closedPort(t)))
	secondary := mustNew(t, Config{Name: "block", Type: TypeReject})
	f := NewFallback(primary, secondary, testLogger(t))
	_, err := f.DialTCP(context.Background(), Dest{Addr: netip.MustParseAddrPort("198.18.0.1:80")})
	expectKind(t, err, KindRejected, `fallback outbound "block"`, "primary: dialing socks5 proxy")
	_, err = f.OpenUDP(context.Background(), testClient)
	expectKind(t, err, KindRejected, `fallback outbound "block"`)
	if st := f.Stats(); st.Rejected != 2 || st.Fallbacks != 2 {
		t.Errorf("stats = %+v", st)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.DialTCP(ctx, Dest{Addr: netip.MustParseAddrPort("198.18.0.1:80")})
	expectKind(t, err, KindCanceled)
	if st := f.Stats(); st.Fallbacks != 2 || secondary.Stats().Dials != 2 {
		t.Errorf("a cancelled dial fell back: %+v", st)
	}
}

func TestLogLimiter(t *testing.T) {
	clock := &fakeClock{now: time.Unix(0, 0)}
	l := LogLimiter{Every: 10 * time.Second, Now: clock.Now}
	type res struct {
		ok bool
		n  uint64
	}
	var got []res
	step := func(d time.Duration) {
		clock.Advance(d)
		ok, n := l.Allow()
		got = append(got, res{ok, n})
	}
	step(0)                // first: allowed
	step(time.Second)      // held
	step(8 * time.Second)  // held (9 s)
	step(time.Second)      // 10 s: allowed, 2 held back
	step(30 * time.Second) // allowed, none held back
	want := []res{{true, 0}, {false, 0}, {false, 0}, {true, 2}, {true, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("allow sequence = %v, want %v", got, want)
	}
}

func TestKindOf(t *testing.T) {
	timeoutErr := &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		err  error
		want FailureKind
	}{
		{nil, KindOther},
		{errors.New("x"), KindOther},
		{fmt.Errorf("a: %w", syscall.ECONNREFUSED), KindRefused},
		{fmt.Errorf("a: %w", syscall.EHOSTUNREACH), KindUnreachable},
		{fmt.Errorf("a: %w", syscall.ENETUNREACH), KindUnreachable},
		{timeoutErr, KindTimeout},
		{context.DeadlineExceeded, KindTimeout},
		{fmt.Errorf("%w (%w)", timeoutErr, context.Canceled), KindCanceled},
		{kinded(ErrHandshake, "x: %w", timeoutErr), KindTimeout},
		{kinded(ErrHandshake, "x"), KindHandshake},
		{kinded(ErrAuth, "x"), KindAuth},
		{kinded(ErrProxy, "x"), KindProxy},
		{kinded(ErrTimeout, "x"), KindTimeout},
		{fmt.Errorf("x: %w", ErrRejected), KindRejected},
		{fmt.Errorf("x: %w", ErrUnsupported), KindUnsupported},
	}
	for _, tt := range tests {
		if got := KindOf(tt.err); got != tt.want {
			t.Errorf("KindOf(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
	if s := FailureKind(99).String(); s != "FailureKind(99)" {
		t.Errorf("String of an unknown kind = %q", s)
	}
}
