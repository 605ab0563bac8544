// Package testutil holds what the tests of several packages share: a
// goroutine leak check, polling for a condition, loggers into the test
// output or into a buffer, and the gate of privileged tests. Only _test.go
// files import it.
package testutil

import (
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// PollEvery is how often WaitFor and CheckGoroutines re-check.
const PollEvery = 10 * time.Millisecond

// stackDumpSize bounds the goroutine dump of a leak report: room for a few
// thousand goroutines' stacks, which is more than any leak needs to show.
const stackDumpSize = 1 << 20

// FailAfter bounds the waits of CheckGoroutines and WaitFor: a test that
// would hang fails instead. It is never a timing assertion.
const FailAfter = 10 * time.Second

// CheckGoroutines fails the test if goroutines started during it are still
// running FailAfter after its cleanup began. Call it first in the test, so
// its cleanup runs after all others (cleanups run last registered first).
func CheckGoroutines(t testing.TB) {
	t.Helper()
	checkGoroutines(t, FailAfter)
}

// checkGoroutines is CheckGoroutines with another bound.
func checkGoroutines(t testing.TB, failAfter time.Duration) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(failAfter)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, stackDumpSize)
				t.Errorf("goroutines leaked: %d before, %d after\n%s",
					before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(PollEvery)
		}
	})
}

// WaitFor polls cond until it holds, and fails the test if FailAfter
// passes first.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitFor(t, FailAfter, what, cond)
}

// waitFor is WaitFor with another bound.
func waitFor(t testing.TB, failAfter time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(PollEvery)
	}
}

// NeedRoot skips the test for a non-root user, except in CI
// (CI=true), where it must run and fails instead. needs says what root is
// needed for ("IP_TRANSPARENT, SO_MARK").
func NeedRoot(t testing.TB, needs string) {
	t.Helper()
	needRootAs(t, os.Getuid(), needs)
}

// needRootAs is NeedRoot for a process running as uid.
func needRootAs(t testing.TB, uid int, needs string) {
	t.Helper()
	if uid == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("test needs root (%s) and CI=true", needs)
	}
	t.Skipf("needs root (%s)", needs)
}

// HaveIPv6 reports whether the IPv6 loopback ::1 is usable; when it is
// not, it says why in the test log.
func HaveIPv6(t testing.TB) bool {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Logf("no IPv6 loopback: %v", err)
		return false
	}
	_ = ln.Close()
	return true
}
