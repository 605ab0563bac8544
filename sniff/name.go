package sniff

import (
	"fmt"
	"strings"
)

// Name limits (RFC 1035 §2.3.4), for names without the trailing dot.
const (
	maxNameLen  = 253
	maxLabelLen = 63
)

// normalizeName validates a host name taken from the wire and returns it
// in ASCII lowercase without its trailing dot. Letters, digits, '-' and
// '_' are accepted in labels ('_' is not valid in host names but appears in
// real ones); anything else, an empty label or a label or name over the
// RFC 1035 limits is an error. A name whose last label is all digits is an
// IPv4 address (or no valid host name, as no top-level domain is numeric),
// so it names no domain: ErrNotFound. It allocates only the result.
func normalizeName(b []byte) (string, error) {
	if n := len(b); n > 0 && b[n-1] == '.' {
		b = b[:n-1]
	}
	if len(b) == 0 {
		return "", fmt.Errorf("server name: empty")
	}
	if len(b) > maxNameLen {
		return "", fmt.Errorf("server name: %d bytes, longer than %d", len(b), maxNameLen)
	}
	label, digits, upper := 0, 0, false
	for i, c := range b {
		switch {
		case c == '.':
			if label == 0 {
				return "", fmt.Errorf("server name: empty label at offset %d", i)
			}
			label, digits = 0, 0
			continue
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z', c == '-', c == '_':
		case c >= 'A' && c <= 'Z':
			upper = true
		default:
			return "", fmt.Errorf("server name: invalid byte 0x%02x at offset %d", c, i)
		}
		if label++; label > maxLabelLen {
			return "", fmt.Errorf("server name: label longer than %d bytes at offset %d", maxLabelLen, i)
		}
	}
	if label == 0 {
		return "", fmt.Errorf("server name: empty last label")
	}
	if digits == label {
		return "", ErrNotFound
	}
	if !upper {
		return string(b), nil
	}
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		sb.WriteByte(c)
	}
	return sb.String(), nil
}
