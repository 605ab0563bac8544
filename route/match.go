package route

import (
	"slices"
	"strings"
)

// Match returns the outbound of the first rule that matches f and its
// index, or the default outbound and -1. It does not allocate.
func (t *Table) Match(f Flow) (outbound string, index int) {
	src, dst, port := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap(), f.Dst.Port()
	// The flow's domain is normalized once, when the first rule with a
	// domain condition needs it.
	var name nameBuf
	const (
		nameUnread = iota
		nameOK
		nameNone
	)
	nameState := nameUnread
	for i := range t.rules {
		r := &t.rules[i]
		c := r.conds
		switch {
		case c&condProto != 0 && r.proto != f.Proto,
			c&condPort != 0 && !portIn(r.ports, port),
			c&condIface != 0 && !r.hasIface(f.Iface),
			c&condDst != 0 && !r.dst.contains(dst),
			c&condSrc != 0 && !r.src.contains(src),
			c&condMAC != 0 && !r.hasMAC(f.MAC):
			continue
		}
		if c&condDomain != 0 {
			if nameState == nameUnread {
				nameState = nameNone
				if normalizeName(&name, f.Domain) {
					nameState = nameOK
				}
			}
			if nameState != nameOK || !r.domains.match(name.b[:name.n]) {
				continue
			}
		}
		return r.Outbound, i
	}
	return t.def, -1
}

func portIn(ranges []PortRange, port uint16) bool {
	for _, r := range ranges {
		if r.contains(port) {
			return true
		}
	}
	return false
}

func (r *Rule) hasIface(name string) bool {
	if name == "" {
		return false
	}
	if slices.Contains(r.ifaces, name) {
		return true
	}
	for _, p := range r.ifpfx {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
