package testutil

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// shortBound is the failAfter of checks that are meant to fail: short,
// so the tests stay fast.
const shortBound = 50 * time.Millisecond

// recorder is a testing.TB that records what a helper reports instead of
// failing the real test. Fatalf and Skipf end the calling goroutine, as the
// real ones do, so helpers that call them run inside run.
type recorder struct {
	testing.TB // the real test, for anything not overridden

	mu       sync.Mutex
	cleanups []func()
	errs     []string
	skipped  string
}

func (r *recorder) Helper() {}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skipped = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// runCleanups runs the registered cleanups, last registered first.
func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// run calls f in its own goroutine, which Fatalf and Skipf may end, and
// waits for it.
func run(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(FailAfter):
		t.Fatal("helper did not return")
	}
}

func TestCheckGoroutinesReportsLeak(t *testing.T) {
	r := &recorder{TB: t}
	checkGoroutines(r, shortBound)
	stuck := make(chan struct{})
	go func() { <-stuck }()
	r.runCleanups()
	close(stuck)
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "goroutines leaked") {
		t.Fatalf("errors = %q, want one goroutine leak report", r.errs)
	}
	if !strings.Contains(r.errs[0], "TestCheckGoroutinesReportsLeak") {
		t.Errorf("the report does not show the leaked goroutine's stack:\n%s", r.errs[0])
	}
}

func TestCheckGoroutinesWaitsForEndingGoroutines(t *testing.T) {
	r := &recorder{TB: t}
	CheckGoroutines(r)
	ending := make(chan struct{})
	go func() { <-ending }()
	time.AfterFunc(3*PollEvery, func() { close(ending) })
	r.runCleanups()
	if len(r.errs) != 0 {
		t.Errorf("errors = %q for a goroutine that ended", r.errs)
	}
}

func TestWaitFor(t *testing.T) {
	r := &recorder{TB: t}
	polls := 0
	run(t, func() { WaitFor(r, "the third poll", func() bool { polls++; return polls == 3 }) })
	if len(r.errs) != 0 || polls != 3 {
		t.Errorf("errors %q after %d polls, want none after 3", r.errs, polls)
	}

	run(t, func() { waitFor(r, shortBound, "never", func() bool { return false }) })
	if len(r.errs) != 1 || r.errs[0] != "timed out waiting for never" {
		t.Errorf("errors = %q, want one timeout naming what was awaited", r.errs)
	}
}

func TestNeedRoot(t *testing.T) {
	for _, tc := range []struct {
		uid             int
		ci              string
		wantErr, wantSk string
	}{
		{uid: 0, ci: "true"},
		{uid: 0, ci: ""},
		{uid: 1000, ci: "", wantSk: "needs root (SO_MARK)"},
		{uid: 1000, ci: "false", wantSk: "needs root (SO_MARK)"},
		{uid: 1000, ci: "true", wantErr: "test needs root (SO_MARK) and CI=true"},
	} {
		t.Run(fmt.Sprintf("uid=%d,CI=%s", tc.uid, tc.ci), func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := &recorder{TB: t}
			run(t, func() { needRootAs(r, tc.uid, "SO_MARK") })
			if got := strings.Join(r.errs, "; "); got != tc.wantErr {
				t.Errorf("error = %q, want %q", got, tc.wantErr)
			}
			if r.skipped != tc.wantSk {
				t.Errorf("skipped = %q, want %q", r.skipped, tc.wantSk)
			}
		})
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	log := b.Logger()
	const writers = 8
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() { log.Debug("line", "writer", i) })
	}
	wg.Wait()
	out := b.String()
	if n := strings.Count(out, "level=DEBUG msg=line"); n != writers {
		t.Errorf("%d debug lines, want %d:\n%s", n, writers, out)
	}
	for i := range writers {
		if !strings.Contains(out, fmt.Sprintf("writer=%d\n", i)) {
			t.Errorf("line of writer %d missing or torn:\n%s", i, out)
		}
	}
}
