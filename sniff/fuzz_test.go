package sniff

import (
	"bytes"
	"crypto/tls"
	"math/rand/v2"
	"testing"
)

// checkResult fails on results no input may produce: a name that is not
// normalized, a name with an error, or ErrNeedMore for a TCP peek of
// MaxPeek bytes.
func checkResult(t *testing.T, b []byte, name string, err error, tcp bool) {
	t.Helper()
	if err != nil {
		if name != "" {
			t.Fatalf("name %q returned with error %v", name, err)
		}
		if tcp && err == ErrNeedMore && len(b) >= MaxPeek {
			t.Fatalf("ErrNeedMore for %d bytes", len(b))
		}
		return
	}
	if again, err := normalizeName([]byte(name)); err != nil || again != name {
		t.Fatalf("returned name %q is not normalized: %q, %v", name, again, err)
	}
}

func FuzzTLSServerName(f *testing.F) {
	for _, tc := range helloCases() {
		h := captureHello(f, tc.cfg)
		f.Add(h.records)
		f.Add(records(h.msg, 7))
		f.Add(h.records[:len(h.records)/2])
	}
	f.Add(records(rfc9001Hello(), maxRecordPayload))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := TLSServerName(b)
		checkResult(t, b, name, err, true)
		checkAgainstStdlibTLS(t, b, name, err)
		if !bytes.Equal(b, orig) {
			t.Fatal("TLSServerName modified its input")
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	for _, tc := range httpCases(f) {
		f.Add(tc.in)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: [2001:2::1]:80\r\n\r\n"))
	f.Add([]byte("CONNECT 198.18.0.1:443 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.example\r\n continued\r\nHost: b.example\r\n\r\n"))
	f.Add([]byte("GET / HTTP/2.0\r\nHost: a.example\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := HTTPHost(b)
		checkResult(t, b, name, err, true)
		checkAgainstStdlibHTTP(t, b, name, err)
		if err == nil && !bytes.Contains(bytes.ToLower(b), []byte(name)) {
			t.Fatalf("name %q is not in the request", name)
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("HTTPHost modified its input")
		}
		sname, serr := Sniff(ProtoTCP, b)
		if len(b) > 0 && b[0] != recordTypeHandshake && (sname != name || errText(serr) != errText(err)) {
			t.Fatalf("Sniff(tcp) = %q, %v; HTTPHost = %q, %v", sname, serr, name, err)
		}
	})
}

func FuzzQUICServerName(f *testing.F) {
	f.Add(readHexFile(f, "rfc9001-a2-client-initial.hex"))
	f.Add(readHexFile(f, "rfc9369-a2-client-initial.hex"))
	hello := quicHello(f, &tls.Config{ServerName: "fuzz.example"})
	dcid := mustHex("0102030405060708")
	f.Add(datagram(f, testPacket{dcid: dcid, frames: cryptoFrame(0, hello)}))
	f.Add(datagram(f, testPacket{version: quicV2, dcid: dcid, pnLen: 1, frames: cryptoFrame(0, hello[:900])}))
	f.Add(datagram(f,
		testPacket{dcid: dcid, frames: cryptoFrame(700, hello[700:])},
		testPacket{dcid: dcid, pn: 1, frames: cryptoFrame(0, hello[:700])}))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := QUICServerName(b)
		checkResult(t, b, name, err, false)
		if !bytes.Equal(b, orig) {
			t.Fatal("QUICServerName modified its input")
		}
	})
}

// FuzzQUICPayload fuzzes what is inside the encryption, which random
// datagrams never reach: two Initial packet payloads (frames) are sealed
// and fed to a QUICSniffer as two datagrams.
func FuzzQUICPayload(f *testing.F) {
	const maxPayload = 4000 // keeps the 2-byte Length field of testPacket valid
	hello := quicHello(f, &tls.Config{ServerName: "payload.example"})
	rng := rand.New(rand.NewPCG(1, 2))
	packets := pack(splitFrames(rng, hello), packetRoom)
	f.Add(packets[0], packets[1])
	f.Add(cryptoFrame(0, rfc9001Hello()), []byte{framePing})
	f.Add([]byte{frameAckECN, 5, 0, 1, 0, 0, 1, 0, 0, 0}, cryptoFrame(0, hello))
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		if len(p1) > maxPayload || len(p2) > maxPayload {
			return
		}
		dcid := mustHex("0102030405060708")
		var s QUICSniffer
		name, err := s.Feed(datagram(t, testPacket{dcid: dcid, frames: p1}))
		checkResult(t, nil, name, err, false)
		if err == ErrNeedMore {
			name, err = s.Feed(datagram(t, testPacket{dcid: dcid, pn: 1, frames: p2}))
			checkResult(t, nil, name, err, false)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
