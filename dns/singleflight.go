package dns

import (
	"context"
	"sync"
)

// flight merges identical concurrent calls: while one call for a key runs,
// later callers with that key wait for its result instead of starting their
// own (golang.org/x/sync/singleflight, reduced to what the Handler needs).
//
// The call runs in its own goroutine, so a caller that gives up (its ctx
// ends) does not cancel the call for the others; fn must bound itself.
type flight[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*call[V]
}

type call[V any] struct {
	done    chan struct{} // closed when val and err are set
	val     V
	err     error
	waiters int // callers that joined, for tests
}

// do returns fn's result for k, running fn unless a call for k is in
// progress. shared reports that the result came from a call another caller
// started. If ctx ends first, do returns ctx's error.
func (f *flight[K, V]) do(ctx context.Context, k K, fn func() (V, error)) (v V, err error, shared bool) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[K]*call[V])
	}
	c, ok := f.calls[k]
	if !ok {
		c = &call[V]{done: make(chan struct{})}
		f.calls[k] = c
		go f.run(k, c, fn)
	}
	c.waiters++
	f.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err, ok
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err(), ok
	}
}

func (f *flight[K, V]) run(k K, c *call[V], fn func() (V, error)) {
	defer func() {
		f.mu.Lock()
		delete(f.calls, k)
		f.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn()
}

// waiting returns how many callers joined k's call (0: none runs).
func (f *flight[K, V]) waiting(k K) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.calls[k]; ok {
		return c.waiters
	}
	return 0
}
