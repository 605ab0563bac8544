package sniff

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// maxMethodLen bounds the request method, so that a client speaking some
// other protocol is not taken for an HTTP client for long. The longest
// IANA-registered method, UPDATEREDIRECTREF, has 17 bytes.
const maxMethodLen = 20

var (
	errNotHTTP = errors.New("http: not an HTTP/1.x request")
	httpPrefix = []byte("HTTP/1.") // HTTP-version of every HTTP/1.x request
	foldedLine = []byte("(obs-fold line)")
)

// HTTPHost returns the host an HTTP/1.x request (request line and header
// fields, RFC 9112) names: the Host field's host, without port, lowercase.
// A request in absolute form ("GET http://host/ HTTP/1.1") or a CONNECT
// request names it in its request target, which takes precedence over Host
// (RFC 9112 §3.2.2); then the header fields are not read. The first Host
// field is returned as soon as the byte after its line has arrived (a
// server rejects a second Host field with 400, RFC 9112 §3.2).
// ErrNotFound: no Host (HTTP/1.0), an empty one, or an IP address.
// HTTP/2 with prior knowledge ("PRI * HTTP/2.0") is not HTTP/1.x.
func HTTPHost(b []byte) (string, error) {
	name, err := httpHost(b)
	return capNeedMore(len(b), name, err)
}

func httpHost(b []byte) (string, error) {
	p := httpParser{b: b}
	method, target, err := p.requestLine()
	if err != nil {
		return "", err
	}
	if authority, ok, err := targetAuthority(method, target); err != nil {
		return "", err
	} else if ok {
		return hostName(authority)
	}
	for first := true; ; first = false {
		if !first && p.off < len(b) && isBlank(b[p.off]) {
			// obs-fold: the line continues the field before, not Host
			// (that returned below). Servers may accept it (RFC 9112
			// §5.2; net/http does), so a Host field may still follow.
			if _, err := p.restOfLine(foldedLine); err != nil {
				return "", err
			}
			continue
		}
		name, value, err := p.field()
		if err != nil {
			return "", err
		}
		if name == nil {
			return "", ErrNotFound // end of the header section
		}
		if !asciiEqualFold(name, "host") {
			continue
		}
		if p.off == len(b) {
			return "", ErrNeedMore // the next line might continue this one
		}
		if isBlank(b[p.off]) {
			return "", fmt.Errorf("http: Host field continued on the next line (obs-fold)")
		}
		return hostName(value)
	}
}

// httpParser reads an HTTP/1.x request head that may end anywhere.
type httpParser struct {
	b   []byte
	off int
}

// requestLine reads "method SP request-target SP HTTP/1.x CRLF".
func (p *httpParser) requestLine() (method, target []byte, err error) {
	i := 0
	for ; i < len(p.b) && p.b[i] != ' '; i++ {
		if !isTokenChar(p.b[i]) || i == maxMethodLen {
			return nil, nil, errNotHTTP
		}
	}
	if i == len(p.b) {
		return nil, nil, ErrNeedMore
	}
	if i == 0 {
		return nil, nil, errNotHTTP
	}
	method = p.b[:i]
	start := i + 1
	for i = start; i < len(p.b) && p.b[i] != ' '; i++ {
		if c := p.b[i]; c <= ' ' || c == 0x7f {
			return nil, nil, errNotHTTP
		}
	}
	if i == len(p.b) {
		return nil, nil, ErrNeedMore
	}
	if i == start {
		return nil, nil, errNotHTTP
	}
	target = p.b[start:i]
	p.off = i + 1
	rest := p.b[p.off:]
	if n := min(len(rest), len(httpPrefix)); !bytes.Equal(rest[:n], httpPrefix[:n]) {
		return nil, nil, errNotHTTP
	}
	if len(rest) <= len(httpPrefix) {
		return nil, nil, ErrNeedMore
	}
	if c := rest[len(httpPrefix)]; c < '0' || c > '9' {
		return nil, nil, errNotHTTP
	}
	p.off += len(httpPrefix) + 1
	if err := p.lineEnd(); err != nil {
		return nil, nil, err
	}
	return method, target, nil
}

// field reads one header field line and returns its name and its value
// without surrounding whitespace; a nil name is the empty line that ends
// the header section.
func (p *httpParser) field() (name, value []byte, err error) {
	if p.off == len(p.b) {
		return nil, nil, ErrNeedMore
	}
	if c := p.b[p.off]; c == '\r' || c == '\n' {
		return nil, nil, p.lineEnd()
	}
	start := p.off
	for ; p.off < len(p.b) && p.b[p.off] != ':'; p.off++ {
		if !isTokenChar(p.b[p.off]) {
			// Also whitespace before the colon or at the start of a line:
			// servers must reject both (RFC 9112 §5.1, §5.2).
			return nil, nil, fmt.Errorf("http: invalid byte 0x%02x in a field name", p.b[p.off])
		}
	}
	if p.off == len(p.b) {
		return nil, nil, ErrNeedMore
	}
	if p.off == start {
		return nil, nil, fmt.Errorf("http: empty field name")
	}
	name = p.b[start:p.off]
	p.off++
	if value, err = p.restOfLine(name); err != nil {
		return nil, nil, err
	}
	return name, value, nil
}

// restOfLine reads a field value (of field name) up to and including the
// line end and returns it without surrounding whitespace.
func (p *httpParser) restOfLine(name []byte) ([]byte, error) {
	start := p.off
	for ; p.off < len(p.b) && p.b[p.off] != '\r' && p.b[p.off] != '\n'; p.off++ {
		if c := p.b[p.off]; c < ' ' && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("http: control byte 0x%02x in field %q", c, name)
		}
	}
	value := bytes.TrimRight(bytes.TrimLeft(p.b[start:p.off], " \t"), " \t")
	return value, p.lineEnd()
}

// lineEnd consumes CRLF, or a bare LF (RFC 9112 §2.2 lets recipients
// accept it).
func (p *httpParser) lineEnd() error {
	if p.off < len(p.b) && p.b[p.off] == '\r' {
		p.off++
	}
	if p.off == len(p.b) {
		return ErrNeedMore
	}
	if p.b[p.off] != '\n' {
		return fmt.Errorf("http: byte 0x%02x where a line should end", p.b[p.off])
	}
	p.off++
	return nil
}

// targetAuthority returns the authority a request target carries: all of
// it for CONNECT (authority-form), the part after "scheme://" for the
// absolute form. ok is false for the origin form ("/path") and "*".
func targetAuthority(method, target []byte) (authority []byte, ok bool, err error) {
	if string(method) == "CONNECT" {
		return target, true, nil
	}
	i := bytes.Index(target, []byte("://"))
	if i <= 0 || !isScheme(target[:i]) {
		return nil, false, nil
	}
	authority = target[i+len("://"):]
	if end := bytes.IndexAny(authority, "/?#"); end >= 0 {
		authority = authority[:end]
	}
	if bytes.IndexByte(authority, '@') >= 0 {
		// RFC 9110 §4.2.4: userinfo in an http(s) URI is an error.
		return nil, false, fmt.Errorf("http: userinfo in the request target")
	}
	return authority, true, nil
}

// hostName returns the domain of an authority "host[:port]".
func hostName(authority []byte) (string, error) {
	if len(authority) == 0 {
		return "", ErrNotFound
	}
	host, port := authority, []byte(nil)
	if authority[0] == '[' {
		end := bytes.IndexByte(authority, ']')
		if end < 0 {
			return "", fmt.Errorf("http: unterminated IP literal in host")
		}
		host, port = nil, authority[end+1:]
	} else if i := bytes.IndexByte(authority, ':'); i >= 0 {
		host, port = authority[:i], authority[i:]
	}
	if len(port) > 0 {
		if port[0] != ':' {
			return "", fmt.Errorf("http: bytes after the IP literal in host")
		}
		for _, c := range port[1:] {
			if c < '0' || c > '9' {
				return "", fmt.Errorf("http: invalid port in host")
			}
		}
	}
	if host == nil {
		return "", ErrNotFound // an IP literal
	}
	name, err := normalizeName(host)
	if err != nil && err != ErrNotFound {
		return "", fmt.Errorf("http: host: %w", err)
	}
	return name, err
}

// isTokenChar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return c < 0x80 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isScheme reports whether s is a URI scheme (RFC 3986 §3.1).
func isScheme(s []byte) bool {
	for i, c := range s {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !alpha && (i == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return len(s) > 0
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// asciiEqualFold reports whether b equals the lowercase ASCII string s,
// ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
