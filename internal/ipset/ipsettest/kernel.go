// Package ipsettest provides Kernel, a strict in-memory stand-in for the
// kernel's ipset netlink API as github.com/vishvananda/netlink v1.3.1
// exposes it, for tests of code built on package ipset without root.
//
// It models hash:net sets only, and returns the errors the kernel returns
// (checked against a real kernel by package ipset's tests): ENOENT for a
// missing set, EEXIST when create meets a set of another shape,
// IPSET_ERR_EXIST for adding a present element without replace or deleting
// an absent one, IPSET_ERR_TYPE_SPECIFIC (hash full) past maxelem,
// IPSET_ERR_PROTOCOL for an address of the other family, IPSET_ERR_TIMEOUT
// for a timeout on a set without timeout support, IPSET_ERR_BUSY for
// destroying a referenced set. Entries expire on the Kernel's clock.
package ipsettest

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Kernel limits and defaults the fake shares with the real kernel.
const (
	// DefaultMaxElem is the kernel's maxelem when create gives none.
	DefaultMaxElem = 65536
	// MaxTimeout is IPSET_MAX_TIMEOUT in seconds; longer timeouts are
	// capped to it.
	MaxTimeout = 2147483
	// maxNameLen is IPSET_MAXNAMELEN without the terminating NUL.
	maxNameLen = 31
)

// Kernel is a strict fake of the kernel's ipsets in one network namespace.
// The zero value is not usable; call New. Safe for concurrent use.
type Kernel struct {
	// Now is the clock entries expire on (nil: time.Now). Set it before
	// first use.
	Now func() time.Time
	// Referenced reports whether a rule uses the named set; destroying a
	// referenced set fails as it does in the kernel. nil: never. It is
	// called with the Kernel's lock held and must not call the Kernel.
	Referenced func(name string) bool
	// OldDestroy makes destroying a missing set fail with ENOENT, as
	// kernels before ipset's destroy gained -exist handling do; newer ones
	// report success.
	OldDestroy bool
	// OpDelay makes every add and del wait this long before it takes
	// effect, to widen race windows in tests of concurrent callers.
	OpDelay time.Duration

	mu   sync.Mutex
	sets map[string]*set
	ops  map[string]int
}

type set struct {
	typ      string
	family   uint8
	maxElem  uint32
	timeout  *uint32 // default timeout; nil: no timeout support
	elements map[netip.Prefix]elem
}

type elem struct {
	expires time.Time // zero: permanent
}

// New returns an empty fake kernel.
func New() *Kernel {
	return &Kernel{sets: map[string]*set{}, ops: map[string]int{}}
}

func (k *Kernel) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Ops returns how many calls of op ("create", "destroy", "list", "add",
// "del") the fake received, failed ones included.
func (k *Kernel) Ops(op string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.ops[op]
}

// IpsetCreate implements ipset.Kernel.
func (k *Kernel) IpsetCreate(name, typename string, o netlink.IpsetCreateOptions) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops["create"]++
	if name == "" || len(name) > maxNameLen {
		return unix.EINVAL
	}
	if typename != "hash:net" {
		return fmt.Errorf("ipsettest: set type %q is not modelled: %w", typename, nl.IPSetError(nl.IPSET_ERR_FIND_TYPE))
	}
	if o.Counters || o.Comments || o.Skbinfo || o.Revision != 0 || o.IPFrom != nil || o.PortFrom != 0 {
		return fmt.Errorf("ipsettest: create options %+v are not modelled", o)
	}
	fam := o.Family
	if fam == 0 {
		fam = unix.AF_INET // what netlink v1.3.1 sends for family 0
	}
	if fam != unix.AF_INET && fam != unix.AF_INET6 {
		return nl.IPSetError(nl.IPSET_ERR_INVALID_FAMILY)
	}
	s := &set{typ: typename, family: fam, maxElem: o.MaxElements, elements: map[netip.Prefix]elem{}}
	if s.maxElem == 0 {
		s.maxElem = DefaultMaxElem
	}
	if o.Timeout != nil {
		t := min(*o.Timeout, MaxTimeout)
		s.timeout = &t
	}
	if old, ok := k.sets[name]; ok {
		// As the kernel: with -exist (no NLM_F_EXCL, netlink's Replace)
		// a set of the same type and hash parameters is accepted even
		// when its family differs, and left as it is.
		if o.Replace && old.sameShape(s) {
			return nil
		}
		return unix.EEXIST
	}
	k.sets[name] = s
	return nil
}

func (s *set) sameShape(o *set) bool {
	sameTimeout := (s.timeout == nil) == (o.timeout == nil) && (s.timeout == nil || *s.timeout == *o.timeout)
	return s.typ == o.typ && s.maxElem == o.maxElem && sameTimeout
}

// IpsetDestroy implements ipset.Kernel.
func (k *Kernel) IpsetDestroy(name string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops["destroy"]++
	if _, ok := k.sets[name]; !ok {
		if k.OldDestroy {
			return unix.ENOENT
		}
		return nil
	}
	if k.Referenced != nil && k.Referenced(name) {
		return nl.IPSetError(nl.IPSET_ERR_BUSY)
	}
	delete(k.sets, name)
	return nil
}

// IpsetList implements ipset.Kernel.
func (k *Kernel) IpsetList(name string) (*netlink.IPSetResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops["list"]++
	s, ok := k.sets[name]
	if !ok {
		return nil, unix.ENOENT
	}
	now := k.now()
	s.expire(now)
	r := &netlink.IPSetResult{
		SetName: name, TypeName: s.typ, Family: s.family, MaxElements: s.maxElem,
		NumEntries: uint32(len(s.elements)), HashSize: 1024,
	}
	if s.timeout != nil {
		t := *s.timeout
		r.Timeout = &t
	}
	if k.Referenced != nil && k.Referenced(name) {
		r.References = 1
	}
	for _, p := range s.sorted() {
		e := netlink.IPSetEntry{IP: net.IP(p.Addr().AsSlice()), CIDR: uint8(p.Bits())}
		if s.timeout != nil {
			left := uint32(s.elements[p].left(now))
			e.Timeout = &left
		}
		r.Entries = append(r.Entries, e)
	}
	return r, nil
}

// IpsetAdd implements ipset.Kernel.
func (k *Kernel) IpsetAdd(name string, e *netlink.IPSetEntry) error {
	time.Sleep(k.OpDelay)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops["add"]++
	s, p, err := k.lookup(name, e)
	if err != nil {
		return err
	}
	now := k.now()
	s.expire(now)
	var el elem
	t := s.timeout
	if e.Timeout != nil {
		if s.timeout == nil {
			return nl.IPSetError(nl.IPSET_ERR_TIMEOUT)
		}
		t = e.Timeout
	}
	if t != nil && *t > 0 {
		el.expires = now.Add(time.Duration(min(*t, MaxTimeout)) * time.Second)
	}
	if _, ok := s.elements[p]; ok {
		if !e.Replace {
			return nl.IPSetError(nl.IPSET_ERR_EXIST)
		}
		s.elements[p] = el // present elements are updated even in a full set
		return nil
	}
	if uint32(len(s.elements)) >= s.maxElem {
		return nl.IPSetError(nl.IPSET_ERR_TYPE_SPECIFIC) // IPSET_ERR_HASH_FULL
	}
	s.elements[p] = el
	return nil
}

// IpsetDel implements ipset.Kernel.
func (k *Kernel) IpsetDel(name string, e *netlink.IPSetEntry) error {
	time.Sleep(k.OpDelay)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ops["del"]++
	s, p, err := k.lookup(name, e)
	if err != nil {
		return err
	}
	s.expire(k.now())
	if _, ok := s.elements[p]; !ok {
		return nl.IPSetError(nl.IPSET_ERR_EXIST)
	}
	delete(s.elements, p)
	return nil
}

// lookup finds the set and decodes the entry the way netlink v1.3.1
// encodes it and the kernel reads it: an address with a 4-byte form is
// IPv4, a missing CIDR means a host entry, and the address is masked.
func (k *Kernel) lookup(name string, e *netlink.IPSetEntry) (*set, netip.Prefix, error) {
	s, ok := k.sets[name]
	if !ok {
		return nil, netip.Prefix{}, unix.ENOENT
	}
	if e == nil || e.IP == nil {
		return nil, netip.Prefix{}, nl.IPSetError(nl.IPSET_ERR_PROTOCOL) // no address attribute
	}
	if e.MAC != nil || e.Port != nil || e.IP2 != nil || e.IFace != "" || e.Mark != nil || e.Comment != "" {
		return nil, netip.Prefix{}, fmt.Errorf("ipsettest: entry fields beyond IP/CIDR/Timeout are not modelled: %+v", *e)
	}
	fam := uint8(unix.AF_INET6)
	ip := e.IP
	if v4 := ip.To4(); v4 != nil {
		fam, ip = unix.AF_INET, v4
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok || fam != s.family {
		return nil, netip.Prefix{}, nl.IPSetError(nl.IPSET_ERR_PROTOCOL)
	}
	bits := int(e.CIDR)
	if bits == 0 {
		bits = addr.BitLen()
	}
	if bits > addr.BitLen() {
		return nil, netip.Prefix{}, nl.IPSetError(nl.IPSET_ERR_INVALID_CIDR)
	}
	return s, netip.PrefixFrom(addr, bits).Masked(), nil
}

// left is the entry's timeout as the kernel lists it: 0 for a permanent
// entry, otherwise the whole seconds left, rounded down but at least 1
// (ip_set_timeout_get: "Zero value in userspace means no timeout").
func (e elem) left(now time.Time) int64 {
	if e.expires.IsZero() {
		return 0
	}
	return max(int64(e.expires.Sub(now)/time.Second), 1)
}

// expire drops the entries whose timeout has run out.
func (s *set) expire(now time.Time) {
	for p, e := range s.elements {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(s.elements, p)
		}
	}
}

func (s *set) sorted() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.elements))
	for p := range s.elements {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// Names returns the names of the sets that exist, sorted.
func (k *Kernel) Names() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for n := range k.sets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// String dumps every set in a canonical form, one header line per set
// and one indented line per live entry ("timeout 0" is permanent):
//
//	gwd_direct4 hash:net inet maxelem 65536 timeout 0
//	  198.18.0.0/24 timeout 0
func (k *Kernel) String() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	var b strings.Builder
	names := make([]string, 0, len(k.sets))
	for n := range k.sets {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		s := k.sets[n]
		s.expire(now)
		fam := "inet"
		if s.family == unix.AF_INET6 {
			fam = "inet6"
		}
		fmt.Fprintf(&b, "%s %s %s maxelem %d", n, s.typ, fam, s.maxElem)
		if s.timeout != nil {
			fmt.Fprintf(&b, " timeout %d", *s.timeout)
		}
		b.WriteString("\n")
		for _, p := range s.sorted() {
			if s.timeout != nil {
				fmt.Fprintf(&b, "  %s timeout %d\n", p, s.elements[p].left(now))
			} else {
				fmt.Fprintf(&b, "  %s\n", p)
			}
		}
	}
	return b.String()
}
