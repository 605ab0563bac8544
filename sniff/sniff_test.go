package sniff

import (
	"crypto/tls"
	"testing"
)

func TestSniff(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "tls.example"})
	rfc := readHexFile(t, "rfc9001-a2-client-initial.hex")
	for _, tc := range []struct {
		proto string
		in    []byte
		want  string
		err   error
	}{
		{ProtoTCP, h.records, "tls.example", nil},
		{ProtoTCP, h.records[:10], "", ErrNeedMore},
		{ProtoTCP, []byte("GET / HTTP/1.1\r\nHost: http.example\r\n\r\n"), "http.example", nil},
		{ProtoTCP, []byte("GE"), "", ErrNeedMore},
		{ProtoTCP, nil, "", ErrNeedMore},
		{ProtoTCP, []byte("SSH-2.0-OpenSSH_9.6\r\n"), "", errMalformed},
		{ProtoTCP, []byte{0x16, 0x02}, "", errMalformed},
		{ProtoUDP, rfc, "example.com", nil},
		{ProtoUDP, []byte("not quic"), "", errMalformed},
		{ProtoUDP, nil, "", errMalformed},
		{"sctp", h.records, "", errMalformed},
	} {
		got, err := Sniff(tc.proto, tc.in)
		expect(t, "Sniff("+tc.proto+")", got, err, tc.want, tc.err)
	}
}
