package route

import (
	"fmt"
	"strings"
)

// maxShown is how many entries of one list String prints before
// summarising the rest ("+9995 more"): large domain lists stay one
// readable line.
const maxShown = 8

// String prints the table for `gatewayd rules`: one numbered line per
// rule in match order, then the default.
//
//	1  quic     proto=udp port=443 -> reject
//	2  rule[0]  dst=198.18.100.0/24 port=443,8000-8100 -> proxy
//	   default  -> direct
func (t *Table) String() string {
	width := len("default")
	for i := range t.rules {
		width = max(width, len(t.rules[i].Label))
	}
	numWidth := len(fmt.Sprint(len(t.rules)))
	var b strings.Builder
	for i := range t.rules {
		r := &t.rules[i]
		fmt.Fprintf(&b, "%*d  %-*s  %s\n", numWidth, i+1, width, r.Label, r.String())
	}
	fmt.Fprintf(&b, "%*s  %-*s  -> %s\n", numWidth, "", width, "default", t.def)
	return b.String()
}

// String prints the rule's conditions and outbound, e.g.
// "proto=tcp port=443 -> proxy"; a rule without conditions prints "any".
func (r *Rule) String() string {
	s := r.shown
	var parts []string
	add := func(key string, n int, item func(int) string) {
		if n == 0 {
			return
		}
		items := make([]string, 0, min(n, maxShown)+1)
		for i := 0; i < n && i < maxShown; i++ {
			items = append(items, item(i))
		}
		if n > maxShown {
			items = append(items, fmt.Sprintf("+%d more", n-maxShown))
		}
		parts = append(parts, key+"="+strings.Join(items, ","))
	}
	if s.Proto != "" {
		parts = append(parts, "proto="+s.Proto)
	}
	add("port", len(s.Port), func(i int) string { return s.Port[i].String() })
	add("dst", len(s.Dst), func(i int) string { return s.Dst[i].String() })
	add("src", len(s.Src), func(i int) string { return s.Src[i].String() })
	add("mac", len(s.MAC), func(i int) string { return s.MAC[i].String() })
	add("iface", len(s.Iface), func(i int) string { return s.Iface[i] })
	add("domain", len(s.Domain), func(i int) string { return s.Domain[i] })
	add("domain_suffix", len(s.DomainSuffix), func(i int) string { return s.DomainSuffix[i] })
	add("domain_keyword", len(s.DomainKeyword), func(i int) string { return s.DomainKeyword[i] })
	if len(parts) == 0 {
		parts = append(parts, "any")
	}
	return strings.Join(parts, " ") + " -> " + r.Outbound
}
