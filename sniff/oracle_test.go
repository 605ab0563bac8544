package sniff

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// stdlibServerName is crypto/tls's reading of a ClientHello: the server
// name a tls.Server sees in b, and whether it parsed a ClientHello at all.
func stdlibServerName(b []byte) (name string, ok bool) {
	client, server := net.Pipe()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = client.Write(b) // ends when the server has read all or closes
		client.Close()
	}()
	cfg := &tls.Config{GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		name, ok = hi.ServerName, true
		return nil, errors.New("seen")
	}}
	// The server's alert would block on the pipe nobody reads: make every
	// write fail at once.
	_ = server.SetWriteDeadline(time.Unix(1, 0))
	_ = tls.Server(server, cfg).Handshake()
	server.Close()
	<-wrote
	return name, ok
}

// checkAgainstStdlibTLS fails if crypto/tls parses b as a ClientHello and
// TLSServerName disagrees about its server name. TLSServerName is stricter
// about names, and takes only a first record of version 3.x for TLS
// (crypto/tls takes any below 16.0), so those are not compared.
func checkAgainstStdlibTLS(t *testing.T, b []byte, got string, err error) {
	t.Helper()
	if len(b) < 2 || b[1] != tlsMajorVersion {
		return
	}
	if err != nil && strings.Contains(err.Error(), "legacy_version") {
		return // a hello whose own version is not TLS 1.x: refused on purpose, like the record's above
	}
	std, ok := stdlibServerName(b)
	if !ok {
		return
	}
	want, nerr := normalizeName([]byte(std))
	switch {
	case std == "":
		if err == nil {
			t.Fatalf("TLSServerName = %q; crypto/tls sees no server name", got)
		}
	case nerr == nil:
		if err != nil || got != want {
			t.Fatalf("TLSServerName = %q, %v; crypto/tls sees %q", got, err, std)
		}
	}
}

// stdlibHost is net/http's reading of a request head: the host
// http.ReadRequest finds (absolute-form or CONNECT target, else Host),
// without port, and whether it parsed an HTTP/1.x request (it also reads
// "HTTP/2.0" request lines, which its server then refuses) with a numeric
// port, if any (net.SplitHostPort takes any port), and no space in a field
// name (ReadRequest keeps "Name :" fields, its server refuses them).
func stdlibHost(b []byte) (string, bool) {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
	if err != nil || req.ProtoMajor != 1 {
		return "", false
	}
	for name := range req.Header {
		if strings.ContainsRune(name, ' ') {
			return "", false
		}
	}
	host := req.Host
	if strings.HasPrefix(host, "[") {
		return host, true // IP-literal syntax, kept whole: not compared
	}
	if h, port, err := net.SplitHostPort(host); err == nil {
		if strings.Trim(port, "0123456789") != "" {
			return "", false // HTTPHost refuses a port that is not a number
		}
		host = h
	}
	return host, true
}

// checkAgainstStdlibHTTP fails if net/http parses b as a request naming a
// domain and HTTPHost disagrees. Requests HTTPHost refuses on purpose are
// not compared: methods over maxMethodLen, userinfo or percent-escapes in
// the target (net/http decodes them), a CONNECT target that is not in
// authority form (net/http reads "host/path"), names it refuses.
func checkAgainstStdlibHTTP(t *testing.T, b []byte, got string, err error) {
	t.Helper()
	std, ok := stdlibHost(b)
	if !ok {
		return
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	method, rest, _ := bytes.Cut(line, []byte(" "))
	target, _, _ := bytes.Cut(rest, []byte(" "))
	if len(method) > maxMethodLen || bytes.ContainsAny(line, "@%") || strings.HasPrefix(std, "[") {
		return
	}
	if string(method) == "CONNECT" && bytes.ContainsAny(target, "/?#") {
		return
	}
	want, nerr := normalizeName([]byte(std))
	if nerr == nil && (err != nil || got != want) {
		t.Fatalf("HTTPHost = %q, %v; net/http sees host %q", got, err, std)
	}
}

func TestOraclesAgreeOnRealInputs(t *testing.T) {
	for _, tc := range helloCases() {
		h := captureHello(t, tc.cfg)
		got, err := TLSServerName(h.records)
		if _, ok := stdlibServerName(h.records); !ok {
			t.Fatalf("%s: crypto/tls does not parse the hello", tc.name)
		}
		checkAgainstStdlibTLS(t, h.records, got, err)
	}
	for _, tc := range httpCases(t) {
		got, err := HTTPHost(tc.in)
		if _, ok := stdlibHost(tc.in); !ok {
			t.Fatalf("%s: net/http does not parse the request", tc.name)
		}
		checkAgainstStdlibHTTP(t, tc.in, got, err)
	}
}
