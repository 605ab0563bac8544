package watchdog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// flock locks belong to an open file description, so two TryLocks in one
// process conflict just like two processes would.

func TestLockExcludesAndRecordsPid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", LockName) // directory created
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := HolderPid(path); got != os.Getpid() {
		t.Errorf("HolderPid = %d, want %d", got, os.Getpid())
	}
	_, err = TryLock(path)
	var held *HeldError
	if !errors.As(err, &held) || held.Pid != os.Getpid() {
		t.Fatalf("second TryLock = %v, want a HeldError naming pid %d", err, os.Getpid())
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil { // twice is fine
		t.Fatal(err)
	}
	l2, err := TryLock(path)
	if err != nil {
		t.Fatalf("TryLock after Release: %v", err)
	}
	defer l2.Release()
}

func TestAcquireWaitsForRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), LockName)
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		l.Release()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var asked []int
	l2, err := Acquire(ctx, path, func(holder int) bool { asked = append(asked, holder); return true })
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	defer l2.Release()
	if len(asked) == 0 || asked[0] != os.Getpid() {
		t.Errorf("wait was asked about %v, want the holder %d first", asked, os.Getpid())
	}
}

func TestAcquireGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), LockName)
	l, err := TryLock(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// The holder is not one worth waiting for.
	_, err = Acquire(context.Background(), path, func(int) bool { return false })
	var held *HeldError
	if !errors.As(err, &held) {
		t.Errorf("Acquire with wait=false: %v, want a HeldError", err)
	}
	// The deadline passes.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Acquire(ctx, path, nil)
	if !errors.As(err, &held) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire past its deadline: %v, want HeldError and DeadlineExceeded", err)
	}
}

func TestHolderPidOfGarbage(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"empty": "", "text": "gatewayd\n", "negative": "-5", "huge": "99999999999999999999999"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := HolderPid(p); got != 0 {
			t.Errorf("%s: HolderPid = %d, want 0", name, got)
		}
	}
	if got := HolderPid(filepath.Join(dir, "missing")); got != 0 {
		t.Errorf("missing file: HolderPid = %d", got)
	}
}
