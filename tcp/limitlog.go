package tcp

import (
	"log/slog"
	"sync"
	"time"
)

// limitLogEvery is the least time between two warnings about clients
// refused at a limit: a flood is one line per period with its count, not
// one line per client.
const limitLogEvery = 10 * time.Second

// limitLog warns once per burst of refusals.
type limitLog struct {
	mu     sync.Mutex
	last   time.Time
	counts map[string]int // refusals by reason since the last warning
}

// note counts one refusal for reason and warns when the last warning is
// limitLogEvery old. Refusals counted after a warning are reported with the
// next one.
func (l *limitLog) note(log *slog.Logger, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]int)
	}
	l.counts[reason]++
	now := time.Now()
	if now.Sub(l.last) < limitLogEvery {
		return
	}
	for r, n := range l.counts {
		log.Warn("tcp clients refused at a limit", "reason", r, "refused", n, "since", l.sinceText(now))
	}
	l.last = now
	clear(l.counts)
}

func (l *limitLog) sinceText(now time.Time) string {
	if l.last.IsZero() {
		return "start"
	}
	return now.Sub(l.last).Round(time.Second).String() + " ago"
}
