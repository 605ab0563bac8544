package main

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	// trimEvery is how often gatewayd looks for freed memory to give back.
	trimEvery = 5 * time.Second
	// trimAbove is how much free heap (freed by the GC, still held by the
	// runtime) makes gatewayd give it all back to the kernel at once. Go's
	// own scavenger returns it gradually and keeps up to the next GC goal
	// (twice the live heap), so after a burst of flows, say thousands of
	// short-lived goroutine stacks, a router would carry that peak for
	// minutes; 4 MiB is about what 2 000 idle flows hold.
	trimAbove = 4 << 20
	// trimFlowDrop: when the flows fell by this many and to less than half
	// their peak, their memory is garbage the GC has not seen yet (nothing
	// allocates while flows idle or close); gatewayd collects and gives it
	// back at once. 1 000 flows hold about 3 MiB.
	trimFlowDrop = 1000
	// heapFree is the runtime metric of free heap not yet returned.
	heapFree = "/memory/classes/heap/free:bytes"
)

// trimMemory gives freed memory back to the kernel, checking every
// trimEvery until ctx is done. flows counts the flows relayed now, started
// the flows ever started. A check reads a runtime metric; giving back runs
// two GCs (under 100 ms for a heap of 50 MiB on this lab's CPU), so it
// costs something only after the heap or the flows shrank.
func trimMemory(ctx context.Context, flows func() int, started func() uint64, log *slog.Logger) {
	tick := time.NewTicker(trimEvery)
	defer tick.Stop()
	release := func() {
		start := time.Now()
		// Two collections: what sat in sync.Pools (copy buffers, the
		// runtime's own) survives the first in their victim caches.
		runtime.GC()
		debug.FreeOSMemory()
		log.Debug("gave freed memory back to the kernel", "took", time.Since(start), "heap_free_left", freeHeap())
	}
	t := trimmer{flows: flows, started: started, free: freeHeap, release: release}
	t.seen = started()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.check()
		}
	}
}

// trimmer decides when to give memory back.
type trimmer struct {
	flows   func() int
	started func() uint64 // flows ever started
	free    func() uint64
	release func()
	peak    int    // most flows seen at a check since the last release
	burst   int    // most flows there may have been at once since the last release
	last    int    // flows at the last check
	seen    uint64 // started() at the last check
	base    int    // flows at the last release
}

// check releases memory when the free heap is above trimAbove, when the
// flows dropped by trimFlowDrop to under half their peak, or when they grew
// by trimFlowDrop since the last release and the burst that opened them is
// over (what opening them took, goroutine stacks and dial state, is
// garbage then).
//
// Flows that start and end between two checks (a burst of short TCP
// flows, UDP sessions with a short idle timeout) never show in flows().
// The flows started since the last check bound how many there were at
// once; that bound counts as the peak once the burst is over (fewer than
// trimFlowDrop flows started since the last check). Under steady churn the
// GC runs on its own and nothing is forced.
func (t *trimmer) check() bool {
	n, started := t.flows(), t.started()
	fresh := 0
	if started >= t.seen { // else a counter was reset: nothing known
		fresh = int(min(started-t.seen, uint64(math.MaxInt32)))
	}
	t.seen = started
	t.burst = max(t.burst, t.last+fresh)
	t.last = n
	peak := t.peak
	if fresh < trimFlowDrop {
		peak = max(peak, t.burst)
	}
	dropped := peak-n >= trimFlowDrop && n < peak/2
	grew := n-t.base >= trimFlowDrop && fresh < trimFlowDrop
	t.peak = max(t.peak, n)
	if !dropped && !grew && t.free() <= trimAbove {
		return false
	}
	t.release()
	t.peak, t.burst, t.base = n, n, n
	return true
}

func freeHeap() uint64 {
	s := []metrics.Sample{{Name: heapFree}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}
