package route

import (
	"bytes"
	"fmt"
	"strings"
)

// maxName is the longest domain name in presentation form without the
// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire, which is 253
// characters of text). Longer names never match a domain condition.
const maxName = 253

// nameBuf holds a normalized flow domain on the caller's stack.
type nameBuf struct {
	b [maxName]byte
	n int
}

// normalizeName lowercases (ASCII, as DNS compares names) and drops one
// trailing dot into buf, without allocating. It reports false for empty or
// over-long names.
func normalizeName(buf *nameBuf, name string) bool {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > maxName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf.b[i] = c
	}
	buf.n = len(name)
	return true
}

// domainMatcher is the domain condition of one rule.
type domainMatcher struct {
	exact    map[string]struct{}
	suffix   map[string]struct{}
	keywords [][]byte
}

func (d *domainMatcher) isEmpty() bool {
	return len(d.exact) == 0 && len(d.suffix) == 0 && len(d.keywords) == 0
}

// match reports whether the normalized name matches an exact name, a
// suffix (the name itself or a parent, walking label by label) or contains
// a keyword. The map lookups with string(b) do not allocate.
func (d *domainMatcher) match(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	if _, ok := d.exact[string(name)]; ok {
		return true
	}
	if len(d.suffix) > 0 {
		for s := name; ; {
			if _, ok := d.suffix[string(s)]; ok {
				return true
			}
			i := bytes.IndexByte(s, '.')
			if i < 0 {
				break
			}
			s = s[i+1:]
		}
	}
	for _, k := range d.keywords {
		if bytes.Contains(name, k) {
			return true
		}
	}
	return false
}

// parseDomain checks a configured name and returns it normalized.
// Wildcards are refused with a hint, since suffix matching covers them.
func parseDomain(s string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	switch {
	case n == "":
		return "", fmt.Errorf("%q: empty domain name", s)
	case strings.Contains(n, "*"):
		return "", fmt.Errorf("%q: wildcards are not supported; use domain_suffix", s)
	case len(n) > maxName:
		return "", fmt.Errorf("%q: longer than %d characters", s, maxName)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" {
			return "", fmt.Errorf("%q: empty label", s)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isNameChar(c) {
				return "", fmt.Errorf("%q: character %q is not allowed in a host name", s, c)
			}
		}
	}
	return n, nil
}

// parseSuffix is parseDomain that also accepts a leading dot (".example.org",
// common in published lists), which means the same as without it.
func parseSuffix(s string) (string, error) {
	return parseDomain(strings.TrimPrefix(strings.TrimSpace(s), "."))
}

func parseKeyword(s string) (string, error) {
	k := strings.ToLower(strings.TrimSpace(s))
	if k == "" {
		return "", fmt.Errorf("%q: empty keyword", s)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isNameChar(c) && c != '.' {
			return "", fmt.Errorf("%q: character %q never appears in a host name", s, c)
		}
	}
	return k, nil
}

// isNameChar: letters, digits, hyphen, and underscore (seen in real names
// such as _dmarc or service records).
func isNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func newDomainMatcher(spec RuleSpec) (domainMatcher, *CompileError) {
	var d domainMatcher
	fail := func(field string, err error) (domainMatcher, *CompileError) {
		return domainMatcher{}, &CompileError{Field: field, Err: err}
	}
	for _, s := range spec.Domain {
		n, err := parseDomain(s)
		if err != nil {
			return fail("domain", err)
		}
		if d.exact == nil {
			d.exact = make(map[string]struct{}, len(spec.Domain))
		}
		d.exact[n] = struct{}{}
	}
	for _, s := range spec.DomainSuffix {
		n, err := parseSuffix(s)
		if err != nil {
			return fail("domain_suffix", err)
		}
		if d.suffix == nil {
			d.suffix = make(map[string]struct{}, len(spec.DomainSuffix))
		}
		d.suffix[n] = struct{}{}
	}
	for _, s := range spec.DomainKeyword {
		k, err := parseKeyword(s)
		if err != nil {
			return fail("domain_keyword", err)
		}
		d.keywords = append(d.keywords, []byte(k))
	}
	return d, nil
}
