package gateway

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// fakeNetlink is a strict in-memory kernel for the Netlink seam: rules and
// routes with the kernel's add/delete semantics (EEXIST on a duplicate
// rule, wildcard matching on delete, ENOENT/ESRCH when nothing matches).
type fakeNetlink struct {
	rules  []netlink.Rule
	routes []netlink.Route
	links  []netlink.Link
	addrs  map[string][]netlink.Addr
}

func newFakeNetlink() *fakeNetlink {
	lo := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo", Index: 1}}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-lan", Index: 2}}
	return &fakeNetlink{
		links: []netlink.Link{lo, br},
		addrs: map[string][]netlink.Addr{"br-lan": {
			mustAddr("198.18.1.1/24"), mustAddr("2001:2:1::1/64"), mustAddr("fe80::1/64"),
		}},
	}
}

func mustAddr(s string) netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return *a
}

func sameMask(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (f *fakeNetlink) RuleAdd(r *netlink.Rule) error {
	if r.Family != unix.AF_INET && r.Family != unix.AF_INET6 {
		return fmt.Errorf("fake: rule without family: %v", r)
	}
	for _, o := range f.rules {
		if o.Family == r.Family && o.Priority == r.Priority && o.Mark == r.Mark && sameMask(o.Mask, r.Mask) && o.Table == r.Table {
			return unix.EEXIST
		}
	}
	f.rules = append(f.rules, *r)
	return nil
}

// RuleDel deletes the first rule matching every attribute r sets, as the
// kernel does (unset attributes are wildcards).
func (f *fakeNetlink) RuleDel(r *netlink.Rule) error {
	for i, o := range f.rules {
		if o.Family != r.Family ||
			(r.Priority >= 0 && o.Priority != r.Priority) ||
			(r.Table > 0 && o.Table != r.Table) ||
			(r.Mark != 0 && o.Mark != r.Mark) ||
			(r.Mask != nil && !sameMask(o.Mask, r.Mask)) {
			continue
		}
		f.rules = slices.Delete(f.rules, i, i+1)
		return nil
	}
	return unix.ENOENT
}

func routeKey(r *netlink.Route) string {
	return fmt.Sprintf("%d/%d/%d/%s", r.Table, r.Type, r.LinkIndex, r.Dst)
}

func (f *fakeNetlink) RouteReplace(r *netlink.Route) error {
	if r.Dst == nil {
		return fmt.Errorf("fake: route without Dst")
	}
	for i := range f.routes {
		if routeKey(&f.routes[i]) == routeKey(r) {
			f.routes[i] = *r
			return nil
		}
	}
	f.routes = append(f.routes, *r)
	return nil
}

func (f *fakeNetlink) RuleList(family int) ([]netlink.Rule, error) {
	var out []netlink.Rule
	for _, r := range f.rules {
		if r.Family == family {
			out = append(out, r)
		}
	}
	return out, nil
}

// RouteListFiltered supports the one filter gatewayd uses: the table.
func (f *fakeNetlink) RouteListFiltered(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	if mask != netlink.RT_FILTER_TABLE {
		return nil, fmt.Errorf("fake: unsupported route filter %#x", mask)
	}
	var out []netlink.Route
	for _, r := range f.routes {
		is4 := r.Dst.IP.To4() != nil
		if r.Table == filter.Table && (family == unix.AF_INET) == is4 {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeNetlink) RouteDel(r *netlink.Route) error {
	for i := range f.routes {
		if routeKey(&f.routes[i]) == routeKey(r) {
			f.routes = slices.Delete(f.routes, i, i+1)
			return nil
		}
	}
	return unix.ESRCH
}

func (f *fakeNetlink) LinkByName(name string) (netlink.Link, error) {
	for _, l := range f.links {
		if l.Attrs().Name == name {
			return l, nil
		}
	}
	return nil, netlink.LinkNotFoundError{}
}

func (f *fakeNetlink) LinkList() ([]netlink.Link, error) { return f.links, nil }

func (f *fakeNetlink) AddrList(l netlink.Link, family int) ([]netlink.Addr, error) {
	if family != netlink.FAMILY_ALL {
		return nil, fmt.Errorf("fake: unexpected family %d", family)
	}
	return f.addrs[l.Attrs().Name], nil
}

// String dumps rules and routes like `ip rule` / `ip route`, canonically.
func (f *fakeNetlink) String() string {
	var lines []string
	for _, r := range f.rules {
		mask := uint32(0)
		if r.Mask != nil {
			mask = *r.Mask
		}
		lines = append(lines, fmt.Sprintf("rule af=%d prio=%d fwmark=0x%x/0x%x table=%d", r.Family, r.Priority, r.Mark, mask, r.Table))
	}
	for _, r := range f.routes {
		ones, _ := r.Dst.Mask.Size()
		ip := r.Dst.IP
		if ip.To4() != nil {
			ip = ip.To4()
		}
		lines = append(lines, fmt.Sprintf("route table=%d type=%d dev=%d dst=%s/%d scope=%d", r.Table, r.Type, r.LinkIndex, net.IP(ip), ones, r.Scope))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
