package dns

import (
	"errors"
	"fmt"
	"slices"
)

// newSplit builds the split-DNS routes: names at or under each configured
// domain go to that domain's own Group, the longest matching domain
// winning ("lan" -> 198.18.1.1, "corp.example" -> the VPN's resolver).
// Split upstreams are trusted like the hosts list: their answers are exempt
// from rebinding protection, since pointing names at private addresses is
// what a LAN or VPN resolver is for.
func newSplit(cfg map[string][]string, mk func(field string, specs []string) (*Group, error)) (suffixMap[*Group], error) {
	m := make(suffixMap[*Group], len(cfg))
	domains := make([]string, 0, len(cfg))
	for d := range cfg {
		domains = append(domains, d)
	}
	slices.Sort(domains) // deterministic error for several bad entries
	for _, d := range domains {
		field := fmt.Sprintf("split[%q]", d)
		name, err := parseDomain(d)
		if err != nil {
			return nil, fieldError(field, err)
		}
		if _, dup := m[name]; dup {
			return nil, fieldError(field, errors.New("domain given twice"))
		}
		if len(cfg[d]) == 0 {
			return nil, fieldError(field, errors.New("no upstreams"))
		}
		g, err := mk(field, cfg[d])
		if err != nil {
			return nil, err
		}
		m[name] = g
	}
	return m, nil
}
