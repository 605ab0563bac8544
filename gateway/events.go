package gateway

import (
	"context"
	"time"
)

// WatchSpec is what the keeper needs to hear about: changes of the policy
// routing in Table (its rule and its routes), of the mangle table of each
// of Families, and of the LAN's addresses and links.
type WatchSpec struct {
	Table    int
	Priority int
	Families []Family
}

// Coverage is what a Watch reports: a part it does not cover must be
// polled.
type Coverage struct {
	// Routing: ip rule, route, address and link changes.
	Routing bool
	// Mangle: changes of the family's mangle table (iptables-nft).
	Mangle map[Family]bool
}

// complete reports whether c covers routing and the mangle table of every
// one of fams.
func (c Coverage) complete(fams []Family) bool {
	if !c.Routing {
		return false
	}
	for _, f := range fams {
		if !c.Mangle[f] {
			return false
		}
	}
	return true
}

// Watch is a running subscription to kernel changes (Gateway.Events).
type Watch struct {
	// C receives after a change that may concern gatewayd's rules;
	// events are coalesced (one pending receive stands for any number).
	// nil never receives.
	C <-chan struct{}
	// Covered reports what C covers now; a subscription that fails
	// while running stops covering its part. nil: nothing is covered.
	Covered func() Coverage
}

// covered is w.Covered, or nothing.
func (w Watch) covered() Coverage {
	if w.Covered == nil {
		return Coverage{}
	}
	return w.Covered()
}

// eventDebounce is how long the keeper waits after an event for more of a
// burst before it checks: a flush of the mangle table sends one
// notification per rule, a re-created bridge dozens of link and address
// events, all within a few milliseconds.
const eventDebounce = 20 * time.Millisecond

// maxDebounce bounds the wait for the end of a burst: a steady stream of
// events does not keep the keeper from checking.
const maxDebounce = 200 * time.Millisecond

// pollInterval is how long the keeper waits for an event before it checks
// anyway: check_interval when events cover everything it keeps, the
// shorter KeepInterval (or check_interval, if shorter) when some part
// sends no events (legacy iptables) or its subscription failed.
func pollInterval(c *Spec, cov Coverage) time.Duration {
	safety := c.CheckInterval
	if cov.complete(c.interceptedFamilies()) {
		return safety
	}
	return min(KeepInterval, safety)
}

// debounce returns once events has been quiet for eventDebounce, or after
// maxDebounce, or when ctx is done (false).
func debounce(ctx context.Context, events <-chan struct{}) bool {
	quiet := time.NewTimer(eventDebounce)
	defer quiet.Stop()
	limit := time.NewTimer(maxDebounce)
	defer limit.Stop()
	for {
		select {
		case <-events:
			quiet.Reset(eventDebounce)
		case <-quiet.C:
			return true
		case <-limit.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
}
