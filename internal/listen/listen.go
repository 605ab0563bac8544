package listen

import (
	"fmt"
	"io"
	"net/netip"
)

// Network picks the network name for listening on a with proto ("tcp" or
// "udp") so that only "[::]" is dual-stack: Go would also make "0.0.0.0"
// dual-stack under the plain name. The Control of a dual-stack socket sees
// proto+"6", so it gets the IPv4 options as well.
func Network(proto string, a netip.Addr) string {
	switch {
	case a.Is4() || a.Is4In6():
		return proto + "4"
	case a.IsUnspecified():
		return proto
	default:
		return proto + "6"
	}
}

// All opens one listener per address with open, in order. If one fails it
// closes those already opened and names the address that failed.
func All[T io.Closer](addrs []netip.AddrPort, open func(netip.AddrPort) (T, error)) ([]T, error) {
	var opened []T
	for _, ap := range addrs {
		ln, err := open(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		if err != nil {
			CloseAll(opened)
			return nil, fmt.Errorf("listening on %s: %w", ap, err)
		}
		opened = append(opened, ln)
	}
	return opened, nil
}

// CloseAll closes every listener, ignoring errors (used on failure paths).
func CloseAll[T io.Closer](lns []T) {
	for _, ln := range lns {
		_ = ln.Close()
	}
}
