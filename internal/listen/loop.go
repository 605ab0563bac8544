package listen

import (
	"errors"
	"time"
)

// Backoff after a temporary accept/receive error (descriptor or memory
// exhaustion, an ICMP error queued on the socket), doubling up to the
// maximum, so a failing listener never spins.
const (
	BackoffMin = 5 * time.Millisecond
	BackoffMax = time.Second
)

// Backoff is the growing pause between retries of one loop.
type Backoff struct{ d time.Duration }

// Reset is called after a success.
func (b *Backoff) Reset() { b.d = 0 }

// Next returns the next pause.
func (b *Backoff) Next() time.Duration {
	b.d = min(max(2*b.d, BackoffMin), BackoffMax)
	return b.d
}

// Sleep waits d or until done is closed; it reports whether the loop
// should go on.
func Sleep(d time.Duration, done <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-done:
		return false
	}
}

// IsOneOf reports whether err is one of the errnos in list.
func IsOneOf(err error, list []error) bool {
	for _, e := range list {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ServeAll runs loop on every listener in its own goroutine and waits for
// all of them. When one fails, stop is called once (it should close the
// listeners, ending the other loops) and that first error is returned.
func ServeAll[T any](lns []T, loop func(T) error, stop func()) error {
	errs := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errs <- loop(ln) }()
	}
	var first error
	for range lns {
		if err := <-errs; err != nil && first == nil {
			first = err
			stop()
		}
	}
	return first
}
