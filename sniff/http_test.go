package sniff

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// writtenRequest returns the request head net/http writes for req.
func writtenRequest(t testing.TB, req *http.Request, proxy bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	write := req.Write
	if proxy {
		write = req.WriteProxy
	}
	if err := write(&buf); err != nil {
		t.Fatalf("writing %s %s: %v", req.Method, req.URL, err)
	}
	return buf.Bytes()
}

type httpCase struct {
	name string
	in   []byte
	want string
	err  error
}

func httpCases(t testing.TB) []httpCase {
	req := func(method, url string, edit func(r *http.Request)) *http.Request {
		r, err := http.NewRequest(method, url, strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(r)
		}
		return r
	}
	get := req(http.MethodGet, "http://Example.COM:8080/path?q=1", nil)
	hostOverride := req(http.MethodPost, "http://198.18.0.1/upload", func(r *http.Request) { r.Host = "Upload.Example.org." })
	ipv6 := req(http.MethodGet, "http://[2001:2::1]:8080/", nil)
	ipv4 := req(http.MethodGet, "http://198.18.0.1/", nil)
	connect := req(http.MethodConnect, "http://tunnel.example:443", nil)
	cookies := req(http.MethodGet, "http://cookies.example/", func(r *http.Request) {
		r.Header.Set("Cookie", strings.Repeat("k=v; ", 1000))
	})
	return []httpCase{
		{name: "get", in: writtenRequest(t, get, false), want: "example.com"},
		{name: "host override", in: writtenRequest(t, hostOverride, false), want: "upload.example.org"},
		{name: "ipv6 host", in: writtenRequest(t, ipv6, false), err: ErrNotFound},
		{name: "ipv4 host", in: writtenRequest(t, ipv4, false), err: ErrNotFound},
		{name: "absolute form", in: writtenRequest(t, req(http.MethodGet, "http://Proxied.example/", nil), true), want: "proxied.example"},
		{name: "connect", in: writtenRequest(t, connect, false), want: "tunnel.example"},
		{name: "large header", in: writtenRequest(t, cookies, false), want: "cookies.example"},
		{name: "host after other fields, bare LF", in: []byte("GET / HTTP/1.1\nUser-Agent: curl/8\nAccept: */*\nhOST:   late.example:80  \n\n"), want: "late.example"},
		{name: "absolute form wins over host", in: []byte("GET https://target.example/x HTTP/1.1\r\nHost: other.example\r\n\r\n"), want: "target.example"},
		{name: "http/1.0 without host", in: []byte("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), err: ErrNotFound},
		{name: "empty host", in: []byte("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n"), err: ErrNotFound},
		{name: "obs-fold in another field", in: []byte("GET / HTTP/1.1\r\nX-A: a\r\n  folded\r\n\tagain\r\nHost: b.example\r\n\r\n"), want: "b.example"},
		{name: "custom method", in: []byte("PROPFIND /dav HTTP/1.1\r\nHost: dav.example\r\n\r\n"), want: "dav.example"},
	}
}

func TestHTTPHost(t *testing.T) {
	for _, tc := range httpCases(t) {
		got, err := HTTPHost(tc.in)
		expect(t, "HTTPHost("+tc.name+")", got, err, tc.want, tc.err)
		got, err = Sniff(ProtoTCP, tc.in)
		expect(t, "Sniff(tcp, "+tc.name+")", got, err, tc.want, tc.err)
	}
}

// TestHTTPHostPrefixes feeds every prefix of each request: ErrNeedMore
// until the Host line and the first byte after it have arrived, then the
// result, which does not change.
func TestHTTPHostPrefixes(t *testing.T) {
	for _, tc := range httpCases(t) {
		found := false
		for i := range len(tc.in) + 1 {
			got, err := HTTPHost(tc.in[:i])
			if err == ErrNeedMore {
				if found {
					t.Fatalf("%s: prefix %d: ErrNeedMore after a result", tc.name, i)
				}
				continue
			}
			expect(t, tc.name+": prefix", got, err, tc.want, tc.err)
			found = true
		}
		if !found {
			t.Fatalf("%s: no prefix gave a result", tc.name)
		}
	}
}

func TestHTTPHostMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		err  error
	}{
		{"empty", "", ErrNeedMore},
		{"method only", "GET", ErrNeedMore},
		{"no version yet", "GET / HT", ErrNeedMore},
		{"cr at the end", "GET / HTTP/1.1\r", ErrNeedMore},
		{"host line not yet followed", "GET / HTTP/1.1\r\nHost: a.example\r\n", ErrNeedMore},
		{"ssh banner", "SSH-2.0-OpenSSH_9.6\r\n", errNotHTTP},
		{"binary", "\x00\x01\x02\x03", errNotHTTP},
		{"tls", "\x16\x03\x01\x02\x00", errNotHTTP},
		{"method too long", strings.Repeat("A", maxMethodLen+1) + " / HTTP/1.1\r\n", errNotHTTP},
		{"leading space", " GET / HTTP/1.1\r\n", errNotHTTP},
		{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", errNotHTTP},
		{"http/0.9", "GET /\r\n", errNotHTTP},
		{"http/2.0 request line", "GET / HTTP/2.0\r\nHost: a.example\r\n\r\n", errNotHTTP},
		{"control byte in target", "GET /\x01 HTTP/1.1\r\n", errNotHTTP},
		{"bare cr", "GET / HTTP/1.1\rHost: a.example\r\n\r\n", errMalformed},
		{"folded host", "GET / HTTP/1.1\r\nHost: a.example\r\n b.example\r\n\r\n", errMalformed},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", errMalformed},
		{"whitespace before first field", "GET / HTTP/1.1\r\n Host: a.example\r\n\r\n", errMalformed},
		{"control byte in value", "GET / HTTP/1.1\r\nX: a\x00b\r\nHost: a.example\r\n\r\n", errMalformed},
		{"invalid host", "GET / HTTP/1.1\r\nHost: a example\r\n\r\n", errMalformed},
		{"userinfo in host", "GET / HTTP/1.1\r\nHost: user@a.example\r\n\r\n", errMalformed},
		{"userinfo in target", "GET http://user@a.example/ HTTP/1.1\r\n\r\n", errMalformed},
		{"bad port", "GET / HTTP/1.1\r\nHost: a.example:http\r\n\r\n", errMalformed},
		{"unbracketed ipv6", "GET / HTTP/1.1\r\nHost: 2001:2::1\r\n\r\n", errMalformed},
		{"unterminated ip literal", "GET / HTTP/1.1\r\nHost: [2001:2::1\r\n\r\n", errMalformed},
		{"junk after ip literal", "GET / HTTP/1.1\r\nHost: [2001:2::1]x\r\n\r\n", errMalformed},
	} {
		got, err := HTTPHost([]byte(tc.in))
		expect(t, "HTTPHost("+tc.name+")", got, err, "", tc.err)
	}
}

func TestHTTPHostBeyondMaxPeek(t *testing.T) {
	head := "GET / HTTP/1.1\r\nCookie: " + strings.Repeat("x", MaxPeek) + "\r\nHost: late.example\r\n\r\n"
	wantName(t, "HTTPHost(all)", must(HTTPHost([]byte(head))), nil, "late.example")
	got, err := HTTPHost([]byte(head[:MaxPeek]))
	if err == nil || err == ErrNeedMore {
		t.Fatalf("HTTPHost(first MaxPeek bytes) = %q, %v; want a final error", got, err)
	}
}

func TestHTTPHostAllocs(t *testing.T) {
	in := []byte("GET / HTTP/1.1\r\nUser-Agent: x\r\nHost: Alloc.Example:80\r\n\r\n")
	if n := testing.AllocsPerRun(50, func() { _, _ = HTTPHost(in) }); n != 1 {
		t.Errorf("%v allocations, want 1 (the name)", n)
	}
	if n := testing.AllocsPerRun(50, func() { _, _ = HTTPHost(in[:20]) }); n != 0 {
		t.Errorf("incomplete request: %v allocations, want 0", n)
	}
}
