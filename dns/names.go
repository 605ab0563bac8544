package dns

import (
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// canonical returns name lowercased (ASCII only, as DNS compares names) and
// fully qualified. Every table in this package is keyed by canonical names.
func canonical(name string) string { return dns.CanonicalName(name) }

// parseDomain checks a configured domain name and returns it canonical.
// "example.com" and "example.com." are the same name; the root is refused,
// because a rule for "." would silently apply to every name. Escapes and
// blanks, which DNS allows but host names never have, are refused as
// likely typos.
func parseDomain(s string) (string, error) {
	if s == "" || s == "." {
		return "", fmt.Errorf("domain %q: want a non-root domain name", s)
	}
	if !validName([]byte(strings.TrimSuffix(s, "."))) {
		return "", fmt.Errorf("domain %q: not a valid domain name", s)
	}
	return canonical(s), nil
}

// suffixes calls f with name and then each of its parent domains, longest
// first, down to the top-level domain (the root is left out), and stops at
// the first call that returns true. It reports whether one did. Label
// boundaries come from dns.NextLabel, so an escaped dot ("a\.b") does not
// split a label. name must be canonical.
func suffixes(name string, f func(suffix string) bool) bool {
	if name == "." || name == "" {
		return false
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if f(name[off:]) {
			return true
		}
	}
	return false
}

// suffixMap maps domains to values; lookup finds the longest configured
// domain that is the name itself or one of its parents.
type suffixMap[V any] map[string]V

func (m suffixMap[V]) lookup(name string) (v V, domain string, ok bool) {
	if len(m) == 0 {
		return v, "", false
	}
	suffixes(name, func(s string) bool {
		v, ok = m[s]
		domain = s
		return ok
	})
	if !ok {
		domain = ""
	}
	return v, domain, ok
}

// Name limits (RFC 1035 §2.3.4), for names without the trailing dot.
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// validName checks a name without trailing dot as dns.IsDomainName
// would, but refuses blanks, control characters and escapes: a name with
// a backslash is refused, so that every '.' of a stored name is a label
// boundary.
func validName(n []byte) bool {
	if len(n) > maxNameLen {
		return false
	}
	label := 0
	for _, c := range n {
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c <= ' ' || c == '\\' || c >= 0x7f:
			return false
		default:
			label++
			if label > maxLabelLen {
				return false
			}
		}
	}
	return label > 0
}
