package sniff

import (
	"crypto/tls"
	"net/http"
	"testing"
)

func BenchmarkTLSServerName(b *testing.B) {
	h := captureHello(b, &tls.Config{ServerName: "www.example.com", NextProtos: []string{"h2", "http/1.1"}})
	for _, bc := range []struct {
		name string
		in   []byte
	}{
		{"one-record", h.records},
		{"200-byte-records", records(h.msg, 200)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := TLSServerName(bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHTTPHost(b *testing.B) {
	req, err := http.NewRequest(http.MethodGet, "http://www.example.com/index.html", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	in := writtenRequest(b, req, false)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HTTPHost(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQUICServerName(b *testing.B) {
	for _, file := range []string{"rfc9001-a2-client-initial.hex", "rfc9369-a2-client-initial.hex"} {
		d := readHexFile(b, file)
		b.Run(file[:7], func(b *testing.B) {
			b.SetBytes(int64(len(d)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := QUICServerName(d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A post-quantum hello in two datagrams, through a QUICSniffer.
	hello := quicHello(b, &tls.Config{ServerName: "www.example.com", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}})
	dcid := mustHex("0102030405060708")
	half := len(hello) / 2
	grams := [][]byte{
		datagram(b, testPacket{dcid: dcid, frames: cryptoFrame(half, hello[half:])}),
		datagram(b, testPacket{dcid: dcid, pn: 1, frames: cryptoFrame(0, hello[:half])}),
	}
	b.Run("pq-two-datagrams", func(b *testing.B) {
		b.SetBytes(int64(len(grams[0]) + len(grams[1])))
		b.ReportAllocs()
		for b.Loop() {
			var s QUICSniffer
			if _, err := s.Feed(grams[0]); err != ErrNeedMore {
				b.Fatal(err)
			}
			if _, err := s.Feed(grams[1]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
