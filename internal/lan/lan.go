// Package lan is gatewayd's one home for what it knows of the router's
// interfaces: which are LAN interfaces (names with iptables' "+"
// wildcard), their subnets, the router's own addresses, and the LAN
// clients' MAC addresses (the neighbour table). The relays, the rules, the
// status endpoint and the config all ask it instead of reading the kernel
// or matching names themselves.
package lan

import (
	"fmt"
	"strings"
)

// Wildcard ends a name pattern that matches every name it prefixes, as in
// iptables: "lan+" matches lan0, lan1 and lan.
const Wildcard = "+"

// maxName is IFNAMSIZ-1: Linux interface names are at most 15 bytes.
const maxName = 15

// CheckPattern says why pattern is not an interface name or a wildcard
// pattern (nil: it is). Linux refuses '/', ':' and white space in names.
func CheckPattern(pattern string) error {
	base := strings.TrimSuffix(pattern, Wildcard)
	if base == "" || len(pattern) > maxName || strings.ContainsAny(base, " /\t\n+!:") {
		return fmt.Errorf("%q is not a valid interface name", pattern)
	}
	return nil
}

// Matches reports whether name matches pattern: equal, or prefixed by a
// wildcard pattern's base.
func Matches(pattern, name string) bool {
	if base, ok := strings.CutSuffix(pattern, Wildcard); ok {
		return strings.HasPrefix(name, base)
	}
	return pattern == name
}

// MatchesAny reports whether name matches one of patterns.
func MatchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Matches(p, name) {
			return true
		}
	}
	return false
}

// Overlap reports whether some interface name could match both patterns.
func Overlap(a, b string) bool {
	aBase, aWild := strings.CutSuffix(a, Wildcard)
	bBase, bWild := strings.CutSuffix(b, Wildcard)
	switch {
	case !aWild && !bWild:
		return aBase == bBase
	case aWild && bWild:
		return strings.HasPrefix(aBase, bBase) || strings.HasPrefix(bBase, aBase)
	case aWild:
		return strings.HasPrefix(bBase, aBase)
	default:
		return strings.HasPrefix(aBase, bBase)
	}
}
