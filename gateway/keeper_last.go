package gateway

import "time"

// LastReapply is when the keeper last re-applied the interception (a
// self-heal); the zero Time if it has not since start.
func (g *Gateway) LastReapply() time.Time {
	k := g.keeper.Load()
	if k == nil {
		return time.Time{}
	}
	if ns := k.lastAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}
