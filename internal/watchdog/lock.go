package watchdog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockName is the lock file's name in gatewayd's state dir. The file is
// never removed: removing a lock file races with the next locker.
const LockName = "gatewayd.lock"

// lockPoll is how often Acquire retries a held lock. A cleanup takes tens
// to hundreds of milliseconds, so this adds little to the wait.
const lockPoll = 10 * time.Millisecond

// pidWidth pads the pid in the lock file so that rewriting it is one
// fixed-size write: readers see the old or the new pid, never an empty
// file. Linux pids have at most 7 digits (pid_max <= 4194304).
const pidWidth = 10

// HeldError says the lock is held by another open of the file.
type HeldError struct {
	Path string
	Pid  int // the holder's pid; 0 if it has not written it yet
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is locked by pid %d", e.Path, e.Pid)
}

// Lock is an exclusive flock(2) on a file that holds the holder's pid. The
// kernel releases it when the holder's file closes, so a crashed holder
// never leaves it stale. The descriptor is close-on-exec: children the
// holder starts do not keep it.
type Lock struct {
	f *os.File
}

// TryLock takes the lock at path once, creating the file and its directory
// as needed. A held lock returns a *HeldError.
func TryLock(path string) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &HeldError{Path: path, Pid: HolderPid(path)}
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if _, err := f.WriteAt(fmt.Appendf(nil, "%*d\n", pidWidth, os.Getpid()), 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("writing pid to %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Acquire retries TryLock until it succeeds or ctx is done. While the lock
// is held, wait (if set) is asked whether to keep waiting for that holder;
// when it says no, Acquire returns the *HeldError. On ctx's end the error
// wraps both the *HeldError and ctx's error.
func Acquire(ctx context.Context, path string, wait func(holder int) bool) (*Lock, error) {
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		l, err := TryLock(path)
		var held *HeldError
		if !errors.As(err, &held) {
			return l, err
		}
		if wait != nil && !wait(held.Pid) {
			return nil, held
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", held, ctx.Err())
		case <-tick.C:
		}
	}
}

// HolderPid reads the pid recorded in the lock file; 0 if there is none.
func HolderPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid < 0 {
		return 0
	}
	return pid
}

// Release unlocks. It is safe on a nil or already released Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor drops the flock
	l.f = nil
	if err != nil {
		return fmt.Errorf("releasing lock: %w", err)
	}
	return nil
}
