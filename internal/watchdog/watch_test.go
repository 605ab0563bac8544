package watchdog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// logBuf is a concurrency-safe log sink the tests read back.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLog(t *testing.T) (*slog.Logger, *logBuf) {
	buf := &logBuf{}
	w := io.MultiWriter(buf, t.Output())
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// fakeCleanup counts calls and returns err.
type fakeCleanup struct {
	calls int
	err   error
}

func (f *fakeCleanup) fn() error { f.calls++; return f.err }

func TestWatcherControlMessages(t *testing.T) {
	tests := []struct {
		name     string
		input    string // what the daemon wrote before its end closed
		failOpen bool
		cleanups int
		logs     string
	}{
		{"clean exit byte", "Q", true, 0, "gatewayd exited cleanly"},
		{"clean exit ignores what follows", "QQQ", true, 0, "exited cleanly"},
		{"EOF without the byte, fail open", "", true, 1, "gatewayd exited unexpectedly, removing interception"},
		{"EOF fail closed only logs", "", false, 0, `failsafe.mode = \"closed\" leaves its interception in place`},
		{"clean exit in fail-closed mode", "Q", false, 0, "exited cleanly"},
		{"unknown bytes are ignored", "x\x00\xff", true, 1, "unknown control message"},
		{"reload without support", "R", true, 1, "reload not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := testLog(t)
			fc := &fakeCleanup{}
			w := &Watcher{Log: log, Policy: Policy{FailOpen: tt.failOpen, Cleanup: fc.fn}}
			if err := w.Run(strings.NewReader(tt.input)); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if fc.calls != tt.cleanups {
				t.Errorf("cleanup ran %d times, want %d", fc.calls, tt.cleanups)
			}
			if !strings.Contains(logs.String(), tt.logs) {
				t.Errorf("log lacks %q:\n%s", tt.logs, logs)
			}
		})
	}
}

// TestWatcherBlocksUntilEOF: nothing happens while the daemon holds its
// end open; closing it without a message triggers the cleanup.
func TestWatcherBlocksUntilEOF(t *testing.T) {
	log, _ := testLog(t)
	r, w := io.Pipe()
	cleaned := make(chan struct{})
	wd := &Watcher{Log: log, Policy: Policy{FailOpen: true, Cleanup: func() error { close(cleaned); return nil }}}
	errc := make(chan error, 1)
	go func() { errc <- wd.Run(r) }()
	if _, err := w.Write([]byte{MsgReload}); err != nil { // consumed: Run is reading
		t.Fatal(err)
	}
	select {
	case <-cleaned:
		t.Fatal("cleanup ran while the pipe was open")
	case err := <-errc:
		t.Fatalf("Run returned while the pipe was open: %v", err)
	default:
	}
	w.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	select {
	case <-cleaned:
	default:
		t.Fatal("cleanup did not run after EOF")
	}
}

func TestWatcherReload(t *testing.T) {
	log, logs := testLog(t)
	first, second := &fakeCleanup{}, &fakeCleanup{}
	reloads := []struct {
		p   Policy
		err error
	}{
		{Policy{FailOpen: false}, nil},                    // R: switch to fail closed
		{Policy{}, errors.New("config.toml:3: bad key")},  // R: invalid file, keep closed
		{Policy{FailOpen: true, Cleanup: second.fn}, nil}, // R: back to open, new cleanup
	}
	n := 0
	w := &Watcher{Log: log, Policy: Policy{FailOpen: true, Cleanup: first.fn},
		Reload: func() (Policy, error) { r := reloads[n]; n++; return r.p, r.err }}
	if err := w.Run(strings.NewReader("RR")); err != nil {
		t.Fatal(err)
	}
	if first.calls != 0 || second.calls != 0 {
		t.Errorf("after switching to fail closed a death cleaned up (%d, %d calls)", first.calls, second.calls)
	}
	if !strings.Contains(logs.String(), "keeping the previous one") || !strings.Contains(logs.String(), "bad key") {
		t.Errorf("a failed reload is not logged:\n%s", logs)
	}
	if err := w.Run(strings.NewReader("R")); err != nil {
		t.Fatal(err)
	}
	if first.calls != 0 || second.calls != 1 {
		t.Errorf("cleanups after reload = %d (old), %d (new); want 0, 1", first.calls, second.calls)
	}
}

func TestWatcherClaim(t *testing.T) {
	tests := []struct {
		name     string
		claimErr error
		cleanups int
		logs     string
	}{
		{"lock taken", nil, 1, "interception removed"},
		{"newer gatewayd took over", fmt.Errorf("pid 42: %w", ErrTakenOver), 0, "leaving the rules to the gatewayd that took over"},
		{"lock unusable: clean up anyway", errors.New("read-only file system"), 1, "without the state lock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := testLog(t)
			fc := &fakeCleanup{}
			var order []string
			w := &Watcher{Log: log, Policy: Policy{FailOpen: true, Cleanup: func() error {
				order = append(order, "cleanup")
				return fc.fn()
			}}, Claim: func() (func(), error) {
				order = append(order, "claim")
				if tt.claimErr != nil {
					return nil, tt.claimErr
				}
				return func() { order = append(order, "release") }, nil
			}}
			if err := w.Run(strings.NewReader("")); err != nil {
				t.Fatal(err)
			}
			if fc.calls != tt.cleanups {
				t.Errorf("cleanup ran %d times, want %d", fc.calls, tt.cleanups)
			}
			if tt.claimErr == nil && strings.Join(order, ",") != "claim,cleanup,release" {
				t.Errorf("order = %v, want claim, cleanup, release", order)
			}
			if !strings.Contains(logs.String(), tt.logs) {
				t.Errorf("log lacks %q:\n%s", tt.logs, logs)
			}
		})
	}
}

func TestWatcherCleanupErrors(t *testing.T) {
	log, logs := testLog(t)
	boom := errors.New("iptables-restore: exit status 4")
	w := &Watcher{Log: log, Policy: Policy{FailOpen: true, Cleanup: (&fakeCleanup{err: boom}).fn}}
	if err := w.Run(strings.NewReader("")); !errors.Is(err, boom) {
		t.Errorf("Run = %v, want the cleanup's error", err)
	}
	if !strings.Contains(logs.String(), "removing interception failed") {
		t.Errorf("failure not logged:\n%s", logs)
	}
	// A fail-open policy without a cleanup function is an error, not a panic.
	w = &Watcher{Log: log, Policy: Policy{FailOpen: true}}
	if err := w.Run(strings.NewReader("")); err == nil {
		t.Error("fail open without Cleanup: no error")
	}
}

// errReader fails like a broken descriptor would.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read: bad file descriptor") }

// TestWatcherReadErrorIsDeath: a control pipe that cannot be read means
// the watchdog can no longer hear the daemon; it acts as on EOF.
func TestWatcherReadErrorIsDeath(t *testing.T) {
	log, logs := testLog(t)
	fc := &fakeCleanup{}
	w := &Watcher{Log: log, Policy: Policy{FailOpen: true, Cleanup: fc.fn}}
	if err := w.Run(errReader{}); err != nil {
		t.Fatal(err)
	}
	if fc.calls != 1 || !strings.Contains(logs.String(), "bad file descriptor") {
		t.Errorf("cleanups = %d, log:\n%s", fc.calls, logs)
	}
}
