package ipset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
)

// Sets manages hash:net sets through a Kernel. It keeps no state of its
// own, so it is as safe for concurrent use as its Kernel (the netlink one
// is).
type Sets struct {
	k Kernel
}

// New returns Sets that act through k.
func New(k Kernel) *Sets { return &Sets{k: k} }

// Ensure creates set if it is missing: a hash:net set of set.Family with
// timeout support (default timeout 0, so entries are permanent unless added
// with a timeout) and set.MaxElem. It is idempotent. A set of that name
// with another shape (left by an older version, or made by hand) is
// destroyed and created again, which fails with ErrInUse while a rule
// still references it.
func (s *Sets) Ensure(set Set) error {
	if set.Family != IPv4 && set.Family != IPv6 {
		return fmt.Errorf("creating ipset %s: unknown family %d", set.Name, set.Family)
	}
	info, err := s.List(set.Name)
	switch {
	case errors.Is(err, ErrNotExist):
		return s.create(set)
	case err != nil:
		return err
	}
	why := mismatch(info, set)
	if why == "" {
		return nil
	}
	if err := s.Destroy(set.Name); err != nil {
		return fmt.Errorf("replacing ipset %s (it has %s): %w", set.Name, why, err)
	}
	return s.create(set)
}

func (s *Sets) create(set Set) error {
	var defaultTimeout uint32 // 0: entries are permanent unless added with a timeout
	opts := netlink.IpsetCreateOptions{
		// Replace only drops NLM_F_EXCL: creating a set that exists with
		// the same shape succeeds instead of failing (ipset -exist).
		Replace:     true,
		Timeout:     &defaultTimeout,
		Family:      set.Family.af(),
		MaxElements: set.MaxElem,
	}
	err := s.k.IpsetCreate(set.Name, TypeHashNet, opts)
	if isSetClash(err) {
		return fmt.Errorf("creating ipset %s: a set of that name with another shape appeared meanwhile: %w", set.Name, err)
	}
	if err != nil {
		return fmt.Errorf("creating ipset %s (%s family %s maxelem %d timeout 0): %w",
			set.Name, TypeHashNet, set.Family, set.MaxElem, err)
	}
	return nil
}

// mismatch describes how info differs from the wanted set, or is "".
func mismatch(info Info, want Set) string {
	switch {
	case info.Type != TypeHashNet:
		return "type " + info.Type
	case info.Family != want.Family:
		return "family " + info.Family.String()
	case !info.Timeouts:
		return "no timeout support"
	case want.MaxElem != 0 && info.MaxElem != want.MaxElem:
		return fmt.Sprintf("maxelem %d", info.MaxElem)
	}
	return ""
}

// SyncResult counts what Sync changed.
type SyncResult struct {
	Added   int // permanent entries added, or timed ones made permanent
	Removed int // permanent entries deleted
	Missing int // wanted entries left out because the set was full
}

// Sync makes the permanent entries of the named set exactly prefixes:
// it adds the missing ones (a timed entry equal to a wanted prefix becomes
// permanent), deletes the other permanent ones and keeps the timed ones.
// Every prefix must belong to the set's family; a /0 is held as its two
// /1 halves. When the set fills up Sync stops and returns an error
// matching ErrFull, with the count in SyncResult.Missing.
func (s *Sets) Sync(ctx context.Context, name string, prefixes []netip.Prefix) (SyncResult, error) {
	var res SyncResult
	info, err := s.List(name)
	if err != nil {
		return res, err
	}
	if info.Type != TypeHashNet || info.Family == 0 || !info.Timeouts {
		return res, fmt.Errorf("syncing ipset %s: not a %s set of family inet or inet6 with timeout support (create it with Ensure)", name, TypeHashNet)
	}
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		if err := checkPrefix(p, info.Family); err != nil {
			return res, fmt.Errorf("syncing ipset %s: %w", name, err)
		}
		for _, m := range members(p) {
			want[m] = true
		}
	}
	var extra []netip.Prefix
	for _, e := range info.Entries {
		switch {
		case want[e.Prefix] && e.Permanent():
			delete(want, e.Prefix) // already in place
		case !want[e.Prefix] && e.Permanent():
			extra = append(extra, e.Prefix)
		} // timed entries stay; a wanted one is made permanent below
	}
	// Delete first: it frees room for the additions.
	for _, p := range extra {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("syncing ipset %s: %w", name, err)
		}
		err := s.k.IpsetDel(name, kernelEntry(p, nil, false))
		if err != nil && !isElemExist(err) { // gone already: fine
			return res, fmt.Errorf("deleting %v from ipset %s: %w", p, name, classify(err))
		}
		res.Removed++
	}
	add := slices.SortedFunc(maps.Keys(want), comparePrefix)
	for i, p := range add {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("syncing ipset %s: %w", name, err)
		}
		var permanent uint32
		err := s.k.IpsetAdd(name, kernelEntry(p, &permanent, true))
		if isHashFull(err) {
			res.Missing = len(add) - i
			return res, fmt.Errorf("syncing ipset %s: %d of %d entries did not fit (maxelem %d): %w",
				name, res.Missing, len(add), info.MaxElem, ErrFull)
		}
		if err != nil {
			return res, fmt.Errorf("adding %v to ipset %s: %w", p, name, classify(err))
		}
		res.Added++
	}
	return res, nil
}

// Add adds p to the named set, or updates the entry's timeout when p is
// there already (ipset -exist). A timeout of 0 makes a permanent entry;
// others are rounded up to whole seconds and capped at the kernel's
// maximum (about 24.8 days). Fails with ErrFull when the set is full and
// with ErrNotExist when the set is missing.
func (s *Sets) Add(name string, p netip.Prefix, timeout time.Duration) error {
	if timeout < 0 {
		return fmt.Errorf("adding %v to ipset %s: negative timeout %v", p, name, timeout)
	}
	if err := checkPrefix(p, familyOfPrefix(p)); err != nil {
		return fmt.Errorf("adding to ipset %s: %w", name, err)
	}
	t := timeoutSeconds(timeout)
	for _, m := range members(p) {
		if err := s.k.IpsetAdd(name, kernelEntry(m, &t, true)); err != nil {
			return fmt.Errorf("adding %v to ipset %s: %w", m, name, classify(err))
		}
	}
	return nil
}

// Delete removes p from the named set; an absent entry is not an error, a
// missing set fails with ErrNotExist. A /0 is deleted as its two halves.
func (s *Sets) Delete(name string, p netip.Prefix) error {
	if err := checkPrefix(p, familyOfPrefix(p)); err != nil {
		return fmt.Errorf("deleting from ipset %s: %w", name, err)
	}
	for _, m := range members(p) {
		if err := s.k.IpsetDel(name, kernelEntry(m, nil, false)); err != nil && !isElemExist(err) {
			return fmt.Errorf("deleting %v from ipset %s: %w", m, name, classify(err))
		}
	}
	return nil
}

// Destroy removes the named set. A missing set is not an error; a set that
// a rule still references fails with ErrInUse (remove the rule first).
func (s *Sets) Destroy(name string) error {
	err := s.k.IpsetDestroy(name)
	switch {
	case err == nil || isNoSet(err): // newer kernels report no error for a missing set
		return nil
	case isBusy(err):
		return fmt.Errorf("destroying ipset %s (remove the iptables rules that match it first): %w: %w", name, ErrInUse, err)
	}
	return fmt.Errorf("destroying ipset %s: %w", name, err)
}

// List returns the named set's header and entries, sorted by prefix.
func (s *Sets) List(name string) (Info, error) {
	r, err := s.k.IpsetList(name)
	if err != nil {
		return Info{}, fmt.Errorf("listing ipset %s: %w", name, classify(err))
	}
	if r == nil {
		return Info{}, fmt.Errorf("listing ipset %s: no answer", name)
	}
	info := Info{
		Name: name, Type: r.TypeName, Family: familyOf(r.Family), MaxElem: r.MaxElements,
		Timeouts: r.Timeout != nil, References: r.References,
	}
	if info.Type != TypeHashNet || info.Family == 0 {
		return info, nil // entries of other types are not prefixes
	}
	for _, e := range r.Entries {
		ent, err := entryFrom(e, info.Family)
		if err != nil {
			return Info{}, fmt.Errorf("listing ipset %s: %w", name, err)
		}
		info.Entries = append(info.Entries, ent)
	}
	slices.SortFunc(info.Entries, func(a, b Entry) int { return comparePrefix(a.Prefix, b.Prefix) })
	return info, nil
}

// classify adds the sentinel matching a kernel error, keeping the error.
func classify(err error) error {
	switch {
	case isNoSet(err):
		return fmt.Errorf("%w: %w", ErrNotExist, err)
	case isHashFull(err):
		return fmt.Errorf("%w: %w", ErrFull, err)
	case isBusy(err):
		return fmt.Errorf("%w: %w", ErrInUse, err)
	}
	return err
}

func familyOfPrefix(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
