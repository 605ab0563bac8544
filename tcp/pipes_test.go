package tcp

import (
	"testing"
	"time"
)

func TestPipePoolBoundedAndTrimmed(t *testing.T) {
	pp := newPipePool(3, nil)
	pp.every = 20 * time.Millisecond
	defer pp.close()
	var lent []*pipe
	for range 3 {
		p := pp.get()
		if p == nil {
			t.Fatal("get returned nil below the bound")
		}
		lent = append(lent, p)
	}
	if p := pp.get(); p != nil {
		t.Fatal("get lent a fourth pipe with a bound of 3")
	}
	for _, p := range lent {
		pp.put(p)
	}
	if l, spare := pp.counts(); l != 0 || spare != 3 {
		t.Fatalf("after put: lent %d spare %d, want 0 and 3", l, spare)
	}
	// A pipe taken again is a spare, not a new one.
	pp.put(pp.get())
	if pp.made != 3 {
		t.Fatalf("made %d pipes, want the 3 spares reused", pp.made)
	}
	waitFor(t, "the unused spares closed", func() bool {
		_, spare := pp.counts()
		return spare == 0
	})
}

func TestPipePoolClosesPipeWithBytes(t *testing.T) {
	pp := newPipePool(1, nil)
	defer pp.close()
	p := pp.get()
	p.n = 10 // a flow broke with bytes in it
	pp.put(p)
	if _, spare := pp.counts(); spare != 0 {
		t.Fatal("a pipe with bytes left went back to the pool")
	}
}
