package outbound

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// consumed runs parse on data through a bytes.Reader and reports how many
// bytes it took.
func consumed(data []byte, oneByte bool, parse func(io.Reader)) int {
	r := bytes.NewReader(data)
	if oneByte {
		parse(iotest.OneByteReader(r))
	} else {
		parse(r)
	}
	return len(data) - r.Len()
}

// replyLen is the length of a complete reply starting data, computed
// independently of the parser; -1 if data cannot hold one.
func replyLen(data []byte) int {
	if len(data) < replyHeadLen {
		return -1
	}
	n := replyHeadLen + portLen
	switch data[3] {
	case atypIPv4:
		n += 4
	case atypIPv6:
		n += 16
	case atypDomain:
		if len(data) < 5 {
			return -1
		}
		n += 1 + int(data[4])
	default:
		return -1
	}
	if len(data) < n {
		return -1
	}
	return n
}

func FuzzSOCKS5Reply(f *testing.F) {
	f.Add([]byte{5, 0, 0, 1, 198, 18, 0, 1, 0x04, 0x38})
	f.Add([]byte{5, 0, 0, 4, 0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80, 'x'})
	f.Add([]byte{5, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 80, 'p', 'a', 'y'})
	f.Add([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{5, 0, 0, 3, 255})
	f.Add([]byte{4, 0, 0, 1})
	f.Add([]byte{5, 0, 0, 9, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep socksReply
		var err error
		n := consumed(data, false, func(r io.Reader) { rep, err = readReply(r) })
		n1 := consumed(data, true, func(r io.Reader) { _, _ = readReply(r) })
		if n != n1 {
			t.Fatalf("consumed %d bytes, %d when read one at a time", n, n1)
		}
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("error %v does not match ErrHandshake", err)
			}
			return
		}
		if data[0] != socksVersion {
			t.Fatalf("accepted version %#x", data[0])
		}
		if rep.rep != repSucceeded {
			if n != replyHeadLen {
				t.Fatalf("failure reply consumed %d bytes, want the %d-byte head", n, replyHeadLen)
			}
			return
		}
		if want := replyLen(data); n != want {
			t.Fatalf("consumed %d bytes, want exactly the reply's %d", n, want)
		}
		if got := binary.BigEndian.Uint16(data[n-2 : n]); rep.bnd.port != got {
			t.Fatalf("port %d, want %d", rep.bnd.port, got)
		}
		if data[3] == atypDomain && rep.bnd.domain != string(data[5:n-2]) {
			t.Fatalf("domain %q, want %q", rep.bnd.domain, data[5:n-2])
		}
		if data[3] != atypDomain && !bytes.Equal(rep.bnd.ip.AsSlice(), data[4:n-2]) {
			t.Fatalf("address %s, want %v", rep.bnd.ip, data[4:n-2])
		}
	})
}

func FuzzSOCKS5UDPHeader(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 198, 18, 0, 1, 0, 53, 'd', 'n', 's'})
	f.Add([]byte{0, 0, 1, 1, 198, 18, 0, 1, 0, 53})
	f.Add([]byte{0, 0, 0, 4, 0x20, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 187})
	f.Add([]byte{0, 0, 0, 3, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 53})
	f.Add([]byte{0, 0, 0, 3, 200})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		frag, src, n, err := parseUDPHeader(data)
		from, ok := src.addrPort() // must not panic, whatever src is
		if err != nil {
			return
		}
		if frag != data[2] {
			t.Fatalf("frag %d, want %d", frag, data[2])
		}
		if want := replyLen(data); n != want {
			t.Fatalf("header length %d, want %d", n, want)
		}
		if got := binary.BigEndian.Uint16(data[n-2 : n]); src.port != got {
			t.Fatalf("port %d, want %d", src.port, got)
		}
		if data[3] != atypDomain {
			if !ok || from.Port() != src.port {
				t.Fatalf("IP source %v not an address (%v)", src, from)
			}
			// A header gatewayd writes for that source parses back to it.
			hdr := appendUDPHeader(nil, from)
			_, back, m, err := parseUDPHeader(append(hdr, 'x'))
			if bf, _ := back.addrPort(); err != nil || m != len(hdr) || bf != from {
				t.Fatalf("re-encoded header %v parses to %v, %d, %v", hdr, back, m, err)
			}
		}
	})
}

func FuzzHTTPConnectResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0"))
	f.Add([]byte("HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\n\nx"))
	f.Add([]byte("HTTP/1.1 200 OK\n\r\n"))
	f.Add([]byte("HTTP/1.1 2x0\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte(strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 6)))
	f.Fuzz(func(t *testing.T, data []byte) {
		var code int
		var line string
		var err error
		n := consumed(data, false, func(r io.Reader) { code, line, err = readConnectResponse(r) })
		var code1 int
		var err1 error
		n1 := consumed(data, true, func(r io.Reader) { code1, _, err1 = readConnectResponse(r) })
		if n != n1 || code != code1 || (err == nil) != (err1 == nil) {
			t.Fatalf("bulk reads: %d bytes, %d, %v; one-byte reads: %d bytes, %d, %v", n, code, err, n1, code1, err1)
		}
		if n > maxResponseHeader {
			t.Fatalf("consumed %d bytes, more than the %d cap", n, maxResponseHeader)
		}
		if err != nil {
			return
		}
		if code < 200 && code != 101 || code > 599 {
			t.Fatalf("final status %d", code)
		}
		if head := data[:n]; !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) {
			t.Fatalf("consumed %q, which does not end a header block", head)
		}
		if !strings.HasPrefix(line, "HTTP/1.") || strings.ContainsFunc(line, func(r rune) bool { return r < ' ' || r > '~' }) {
			t.Fatalf("status line %q", line)
		}
	})
}
