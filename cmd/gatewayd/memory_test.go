package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTrimmerReleasesAfterFreeHeapOrFlowDrop(t *testing.T) {
	var flows int
	var free uint64
	released := 0
	tr := trimmer{flows: func() int { return flows }, started: func() uint64 { return 0 },
		free: func() uint64 { return free }, release: func() { released++ }}
	steps := []struct {
		flows int
		free  uint64
		want  bool
	}{
		{0, trimAbove, false},    // at the threshold
		{0, trimAbove + 1, true}, // above it
		{5000, 0, true},          // 5 000 flows opened, the burst over: what opening them took goes back
		{3000, 0, false},         // a drop, but to more than half the peak
		{2400, 0, true},          // under half the peak and by more than trimFlowDrop
		{2400, 0, false},         // the peak restarts at the release
		{1500, 0, false},         // under half, but by less than trimFlowDrop
		{0, trimAbove + 1, true}, // free heap still counts
	}
	for i, st := range steps {
		flows, free = st.flows, st.free
		if got := tr.check(); got != st.want {
			t.Errorf("step %d (%d flows, %d free): released %v, want %v", i, st.flows, st.free, got, st.want)
		}
	}
	if released != 4 {
		t.Errorf("released %d times, want 4", released)
	}
}

// A burst of flows that start and end between two checks never shows in
// the flow count: the trimmer sees it in the flows started, and gives its
// memory back at the first check after it. Steady churn forces nothing.
// (Found by TestSoakChurn: a burst of 1 000 UDP sessions left 70 MiB of
// garbage on the heap, and the resident memory creeping up, for the two
// minutes until the runtime's forced GC.)
func TestTrimmerReleasesAfterABurstBetweenChecks(t *testing.T) {
	var flows int
	var started uint64
	released := 0
	tr := trimmer{flows: func() int { return flows }, started: func() uint64 { return started },
		free: func() uint64 { return 0 }, release: func() { released++ }}
	steps := []struct {
		flows int
		fresh uint64 // flows started since the last check
		want  bool
	}{
		{0, 0, false},
		{0, 1500, false},   // a burst came and went: still going on?
		{0, 0, true},       // over: its memory goes back
		{0, 0, false},      // once
		{0, 900, false},    // a smaller burst than trimFlowDrop
		{0, 0, false},      // is left to the GC
		{100, 1200, false}, // steady churn...
		{100, 1200, false},
		{100, 1200, false},  // ...forces nothing
		{100, 10, true},     // until it ends
		{3000, 3000, false}, // a burst of long flows: seen at a check
		{3000, 0, true},     // still open, the burst over: what opening them took goes back
		{3000, 0, false},    // once
		{0, 0, true},        // closed
	}
	for i, st := range steps {
		flows, started = st.flows, started+st.fresh
		if got := tr.check(); got != st.want {
			t.Errorf("step %d (%d flows, %d started since the last check): released %v, want %v", i, st.flows, st.fresh, got, st.want)
		}
	}
	if released != 4 {
		t.Errorf("released %d times, want 4", released)
	}
	// A counter going back (not expected: the relays live as long as
	// gatewayd) counts as no flows started.
	started = 0
	if tr.check() {
		t.Error("released when the started count went back")
	}
}

// The metric it reads is the runtime's: a freed burst shows as free heap,
// and giving it back empties it.
func TestFreeHeapSeesAFreedBurst(t *testing.T) {
	burst := make([][]byte, 0, 64)
	for range 64 {
		burst = append(burst, make([]byte, 256<<10))
	}
	runtime.KeepAlive(burst)
	burst = nil
	runtime.GC()
	if got := freeHeap(); got < trimAbove {
		t.Fatalf("free heap after freeing 16 MiB = %d, want above %d", got, trimAbove)
	}
	debug.FreeOSMemory()
	if got := freeHeap(); got > trimAbove {
		t.Errorf("free heap after giving it back = %d, want at most %d", got, trimAbove)
	}
}
