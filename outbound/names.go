package outbound

import (
	"net/netip"
	"strings"
)

// DNS name limits (RFC 1035 sec. 2.3.4): 253 characters in text form
// without the trailing dot, 63 per label.
const (
	maxHostLen  = 253
	maxLabelLen = 63
)

// proxyHostName returns d in the form a proxy gets it (no trailing dot),
// and whether it may be sent at all: a hostname of letters, digits, '-'
// and '_' labels, not an IP literal. Anything else (a sniffed name could
// carry any bytes, CR LF included) makes the caller send the IP instead.
func proxyHostName(d string) (string, bool) {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > maxHostLen {
		return "", false
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > maxLabelLen {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
			if !ok {
				return "", false
			}
		}
	}
	return d, true
}

// printable makes text from a peer safe for an error message: at most
// limit bytes, control and non-ASCII bytes replaced by '?'.
func printable(s string, limit int) string {
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r > '~' {
			return '?'
		}
		return r
	}, s)
}
