package gateway

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Netlink is the seam over the few netlink calls gatewayd makes. A
// *netlink.Handle implements it; tests use a strict fake.
type Netlink interface {
	RuleAdd(*netlink.Rule) error
	RuleDel(*netlink.Rule) error
	RouteReplace(*netlink.Route) error
	RouteDel(*netlink.Route) error
	RuleList(family int) ([]netlink.Rule, error)
	RouteListFiltered(family int, filter *netlink.Route, filterMask uint64) ([]netlink.Route, error)
	LinkByName(name string) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
}

var _ Netlink = (*netlink.Handle)(nil)

// maxDuplicates bounds the delete loops: RuleDel/RouteDel remove one match
// per call, and a crashed older version might have left duplicates.
const maxDuplicates = 64

// policyRouting owns the policy routing that makes TPROXY work: per family,
// `fwmark MARK/MASK lookup TABLE priority PRIO` and, in TABLE,
// `local default dev lo`, which delivers the marked (foreign-destination)
// packets to the local stack where the TPROXY socket waits.
type policyRouting struct {
	NL Netlink
}

// fwmarkRule is the rule of family f; the same value is used to add and to
// delete, because RuleDel treats every unset attribute as a wildcard.
func fwmarkRule(c *Spec, f Family) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = f.Netlink()
	r.Mark = c.TProxy.Mark
	mask := c.TProxy.Mask
	r.Mask = &mask
	r.Table = c.Routing.Table
	r.Priority = c.Routing.Priority
	return r
}

// localRoute is `local default dev lo table TABLE` of family f.
func localRoute(c *Spec, f Family, loIndex int) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: loIndex,
		Table:     c.Routing.Table,
		Type:      unix.RTN_LOCAL,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Scope:     netlink.SCOPE_HOST, // as iproute2 sets for local routes
	}
	if f == IPv6 {
		r.Dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		r.Scope = netlink.SCOPE_UNIVERSE
	}
	return r
}

func (r *policyRouting) loIndex() (int, error) {
	lo, err := r.NL.LinkByName("lo")
	if err != nil {
		return 0, fmt.Errorf("finding lo: %w", err)
	}
	return lo.Attrs().Index, nil
}

// Set installs the rule and route of every intercepted family. Repeatable.
func (r *policyRouting) Set(c *Spec) error {
	lo, err := r.loIndex()
	if err != nil {
		return err
	}
	for _, f := range Families {
		if !c.Intercepts(f) {
			continue
		}
		if err := r.NL.RouteReplace(localRoute(c, f, lo)); err != nil {
			return fmt.Errorf("adding %s local route to table %d: %w", f, c.Routing.Table, err)
		}
		if err := r.NL.RuleAdd(fwmarkRule(c, f)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %s fwmark rule: %w", f, err)
		}
	}
	return nil
}

// Cleanup removes the rules and routes of both families (whether or not
// this config intercepts them). Safe when nothing is there.
func (r *policyRouting) Cleanup(c *Spec) error {
	var errs []error
	for _, f := range Families {
		if err := deleteAll(func() error { return r.NL.RuleDel(fwmarkRule(c, f)) }); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s fwmark rule: %w", f, err))
		}
	}
	lo, err := r.loIndex()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, f := range Families {
		if err := deleteAll(func() error { return r.NL.RouteDel(localRoute(c, f, lo)) }); err != nil {
			errs = append(errs, fmt.Errorf("deleting %s local route from table %d: %w", f, c.Routing.Table, err))
		}
	}
	return errors.Join(errs...)
}

// Missing describes what of the rules and routes Set installs is not in
// the kernel now (nil: all there), for the keeper.
func (r *policyRouting) Missing(c *Spec) ([]string, error) {
	lo, err := r.loIndex()
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, f := range Families {
		if !c.Intercepts(f) {
			continue
		}
		want := fwmarkRule(c, f)
		rules, err := r.NL.RuleList(f.Netlink())
		if err != nil {
			return nil, fmt.Errorf("listing %s ip rules: %w", f, err)
		}
		if !slices.ContainsFunc(rules, func(o netlink.Rule) bool {
			return o.Priority == want.Priority && o.Table == want.Table && o.Mark == want.Mark &&
				o.Mask != nil && *o.Mask == *want.Mask
		}) {
			missing = append(missing, fmt.Sprintf("%s rule fwmark %#x/%#x lookup %d priority %d",
				f, want.Mark, *want.Mask, want.Table, want.Priority))
		}
		routes, err := r.NL.RouteListFiltered(f.Netlink(), &netlink.Route{Table: c.Routing.Table}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return nil, fmt.Errorf("listing %s routes of table %d: %w", f, c.Routing.Table, err)
		}
		if !slices.ContainsFunc(routes, func(o netlink.Route) bool {
			return o.Type == unix.RTN_LOCAL && o.LinkIndex == lo && isDefault(o.Dst)
		}) {
			missing = append(missing, fmt.Sprintf("%s route local default dev lo table %d", f, c.Routing.Table))
		}
	}
	return missing, nil
}

// isDefault: netlink reports a default route's Dst as nil or as a /0.
func isDefault(dst *net.IPNet) bool {
	if dst == nil {
		return true
	}
	ones, _ := dst.Mask.Size()
	return ones == 0
}

// deleteAll calls del until it reports that nothing is left.
func deleteAll(del func() error) error {
	for range maxDuplicates {
		err := del()
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("still present after %d deletions", maxDuplicates)
}
