// Package fdbudget shares the process's open-file limit between its flows
// and keeps a reserve free for what must work at any load: self-healing
// (iptables-restore, netlink), the status endpoint, DNS, logs, reloads.
// Relays take descriptors from a Budget before they open them and refuse a
// flow when it has none left, so a flood ends in prompt refusals, not in
// EMFILE wherever it happens to strike.
package fdbudget

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Reserve bounds: a reserve of limit/reserveShare descriptors, at least
// MinReserve (an exec'd iptables-restore needs about ten, the status
// endpoint and DNS a few each, with room for a reload) and at most
// MaxReserve.
const (
	MinReserve   = 64
	MaxReserve   = 512
	reserveShare = 16
)

// Budget counts the descriptors flows hold. A nil *Budget has no limit.
type Budget struct {
	capacity int64
	reserve  int64
	used     atomic.Int64
	denied   atomic.Uint64
}

// New returns a budget of capacity descriptors (at least 0).
func New(capacity int) *Budget {
	return &Budget{capacity: int64(max(capacity, 0))}
}

// ForProcess returns the budget of this process: its soft RLIMIT_NOFILE
// (Go raised it to the hard limit at start) less what is open now less the
// reserve.
func ForProcess() (*Budget, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return nil, fmt.Errorf("reading the open-file limit: %w", err)
	}
	open, err := OpenFDs()
	if err != nil {
		return nil, err
	}
	limit := int64(min(r.Cur, 1<<40))
	reserve := ReserveFor(limit)
	b := New(int(limit - int64(open) - reserve))
	b.reserve = reserve
	return b, nil
}

// ReserveFor is the reserve kept out of a limit of limit descriptors.
func ReserveFor(limit int64) int64 {
	return min(max(limit/reserveShare, MinReserve), MaxReserve)
}

// OpenFDs counts the process's open descriptors.
func OpenFDs() (int, error) {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("counting open descriptors: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0, fmt.Errorf("counting open descriptors: %w", err)
	}
	return len(names) - 1, nil // less the directory itself
}

// Take takes n descriptors, or none and false when fewer than n are left.
func (b *Budget) Take(n int) bool {
	if b == nil {
		return true
	}
	if b.used.Add(int64(n)) > b.capacity {
		b.used.Add(-int64(n))
		b.denied.Add(1)
		return false
	}
	return true
}

// Give returns n descriptors taken before.
func (b *Budget) Give(n int) {
	if b != nil {
		b.used.Add(-int64(n))
	}
}

// Stats is a snapshot of a budget.
type Stats struct {
	Capacity int64  // descriptors flows may hold
	Reserve  int64  // kept out of Capacity for everything else
	Used     int64  // held by flows now
	Denied   uint64 // takes refused
}

// Stats returns the budget's figures; zeros for a nil budget.
func (b *Budget) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	return Stats{Capacity: b.capacity, Reserve: b.reserve, Used: b.used.Load(), Denied: b.denied.Load()}
}
