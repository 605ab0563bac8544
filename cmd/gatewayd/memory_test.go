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
	tr := trimmer{flows: func() int { return flows }, free: func() uint64 { return free }, release: func() { released++ }}
	steps := []struct {
		flows int
		free  uint64
		want  bool
	}{
		{0, trimAbove, false},    // at the threshold
		{0, trimAbove + 1, true}, // above it
		{5000, 0, false},         // flows grow: nothing to give back
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
	if released != 3 {
		t.Errorf("released %d times, want 3", released)
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
