package fdbudget

import (
	"sync"
	"testing"
)

func TestTakeStopsAtCapacity(t *testing.T) {
	b := New(5)
	for range 2 {
		if !b.Take(2) {
			t.Fatal("take within capacity refused")
		}
	}
	if b.Take(2) {
		t.Fatal("take beyond capacity granted")
	}
	if !b.Take(1) {
		t.Fatal("the last descriptor refused")
	}
	b.Give(2)
	if !b.Take(2) {
		t.Fatal("descriptors given back are not available again")
	}
	if s := b.Stats(); s.Used != 5 || s.Denied != 1 || s.Capacity != 5 {
		t.Errorf("stats = %+v, want 5 used, 1 denied", s)
	}
}

func TestConcurrentTakesNeverExceedCapacity(t *testing.T) {
	const capacity = 100
	b := New(capacity)
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if b.Take(2) {
					mu.Lock()
					granted += 2
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if granted != capacity || b.Stats().Used != capacity {
		t.Errorf("granted %d, used %d; want exactly %d", granted, b.Stats().Used, capacity)
	}
}

func TestNilBudgetIsUnlimited(t *testing.T) {
	var b *Budget
	if !b.Take(1 << 20) {
		t.Fatal("nil budget refused")
	}
	b.Give(1)
	if s := b.Stats(); s != (Stats{}) {
		t.Errorf("nil budget stats = %+v", s)
	}
}

func TestForProcessLeavesTheReserve(t *testing.T) {
	b, err := ForProcess()
	if err != nil {
		t.Fatal(err)
	}
	s := b.Stats()
	if s.Reserve < MinReserve || s.Reserve > MaxReserve || s.Capacity <= 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestReserveFor(t *testing.T) {
	for _, c := range []struct{ limit, want int64 }{
		{256, MinReserve}, {4096, 256}, {20000, 512}, {65536, MaxReserve},
	} {
		if got := ReserveFor(c.limit); got != c.want {
			t.Errorf("ReserveFor(%d) = %d, want %d", c.limit, got, c.want)
		}
	}
}
