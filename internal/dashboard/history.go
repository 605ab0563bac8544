package dashboard

import (
	"sync"
	"time"
)

// Throughput history. Samples are taken when a page asks (no timer runs
// while nobody looks, so an idle router stays idle), at most one per
// sampleEvery whatever the number of open pages, into a fixed ring.
const (
	sampleEvery = 2 * time.Second // the graph's resolution: pages poll about this often
	historyLen  = 150             // 5 minutes of samples at sampleEvery
	gapAfter    = 3 * sampleEvery // samples further apart than this are not joined (nobody looked)
)

// sample is one reading of the running totals.
type sample struct {
	at      time.Time
	rx, tx  uint64 // LAN bytes from and to the clients
	queries uint64 // DNS queries answered
}

// Point is one point of the throughput graph: the rates between two
// samples, at the later one.
type Point struct {
	T      int64   `json:"t"`       // Unix milliseconds
	Up     float64 `json:"up"`      // bytes/s from the LAN clients
	Down   float64 `json:"down"`    // bytes/s to them
	DNSQPS float64 `json:"dns_qps"` // DNS queries/s
}

// history is the ring of samples. Safe for concurrent use.
type history struct {
	mu   sync.Mutex
	ring [historyLen]sample
	n    int // samples held, up to historyLen
	next int // where the next one goes
}

// observe takes a sample with read unless the last one is younger than
// sampleEvery.
func (h *history) observe(now time.Time, read func() sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n > 0 && now.Sub(h.lastLocked().at) < sampleEvery {
		return
	}
	s := read()
	s.at = now
	h.ring[h.next] = s
	h.next = (h.next + 1) % historyLen
	h.n = min(h.n+1, historyLen)
}

func (h *history) lastLocked() sample { return h.ring[(h.next+historyLen-1)%historyLen] }

// points are the rates between consecutive samples, oldest first; pairs
// further apart than gapAfter, or whose totals went down (an interface
// recreated), give none.
func (h *history) points() []Point {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Point, 0, h.n)
	start := (h.next - h.n + historyLen) % historyLen
	for i := 1; i < h.n; i++ {
		a, b := h.ring[(start+i-1)%historyLen], h.ring[(start+i)%historyLen]
		dt := b.at.Sub(a.at)
		if dt <= 0 || dt > gapAfter || b.rx < a.rx || b.tx < a.tx || b.queries < a.queries {
			continue
		}
		sec := dt.Seconds()
		out = append(out, Point{
			T:      b.at.UnixMilli(),
			Up:     float64(b.rx-a.rx) / sec,
			Down:   float64(b.tx-a.tx) / sec,
			DNSQPS: float64(b.queries-a.queries) / sec,
		})
	}
	return out
}
