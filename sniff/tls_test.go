package sniff

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"strings"
	"testing"
)

// helloCase is a crypto/tls client configuration and the name its
// ClientHello must give.
type helloCase struct {
	name string
	cfg  *tls.Config
	want string
	err  error
}

func helloCases() []helloCase {
	long := strings.Repeat(strings.Repeat("x", 63)+".", 3) + strings.Repeat("y", 61)
	return []helloCase{
		{name: "plain", cfg: &tls.Config{ServerName: "example.com"}, want: "example.com"},
		{name: "mixed case and trailing dot", cfg: &tls.Config{ServerName: "WWW.Example.ORG."}, want: "www.example.org"},
		{name: "alpn", cfg: &tls.Config{ServerName: "h2.example.net", NextProtos: []string{"h2", "http/1.1"}}, want: "h2.example.net"},
		{name: "x25519mlkem768", cfg: &tls.Config{ServerName: "pq.example", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519}}, want: "pq.example"},
		{name: "secp384r1mlkem1024", cfg: &tls.Config{ServerName: "pq1024.example", CurvePreferences: []tls.CurveID{tls.SecP384r1MLKEM1024}}, want: "pq1024.example"},
		{name: "tls12 only", cfg: &tls.Config{ServerName: "legacy.example", MaxVersion: tls.VersionTLS12}, want: "legacy.example"},
		{name: "253-byte name", cfg: &tls.Config{ServerName: long}, want: long},
		{name: "ip address", cfg: &tls.Config{ServerName: "198.18.0.1", InsecureSkipVerify: true}, err: ErrNotFound},
		{name: "no server name", cfg: &tls.Config{InsecureSkipVerify: true}, err: ErrNotFound},
	}
}

func TestTLSServerNameRealHellos(t *testing.T) {
	for _, tc := range helloCases() {
		t.Run(tc.name, func(t *testing.T) {
			h := captureHello(t, tc.cfg)
			orig := bytes.Clone(h.records)
			got, err := TLSServerName(h.records)
			expect(t, "TLSServerName", got, err, tc.want, tc.err)
			if !bytes.Equal(h.records, orig) {
				t.Fatal("TLSServerName modified its input")
			}
			// Sniff dispatches a handshake record to the TLS parser.
			got, err = Sniff(ProtoTCP, h.records)
			expect(t, "Sniff(tcp)", got, err, tc.want, tc.err)
		})
	}
}

func TestTLSServerNamePQHelloSize(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "pq.example", CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}})
	// The X25519MLKEM768 key share alone has 1216 bytes.
	t.Logf("post-quantum ClientHello: %d bytes", len(h.msg))
	if len(h.msg) < 1216 {
		t.Fatalf("post-quantum ClientHello is only %d bytes: no large key share", len(h.msg))
	}
	wantName(t, "TLSServerName", must(TLSServerName(h.records)), nil, "pq.example")
}

func TestTLSServerNameECHReturnsOuterName(t *testing.T) {
	h := captureHello(t, &tls.Config{
		ServerName:                     "secret.example",
		MinVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: echConfigList(t, "public.example"),
	})
	if bytes.Contains(h.records, []byte("secret.example")) {
		t.Fatal("the inner server name is visible: ECH was not used")
	}
	got, err := TLSServerName(h.records)
	wantName(t, "TLSServerName(ECH hello)", got, err, "public.example")
}

// TestTLSServerNamePrefixes feeds every prefix of real ClientHellos, framed
// as sent and re-framed into records of awkward sizes (the handshake
// header itself split across records): each prefix gives ErrNeedMore until
// the server_name extension has arrived, and the name from then on.
func TestTLSServerNamePrefixes(t *testing.T) {
	for _, tc := range helloCases() {
		h := captureHello(t, tc.cfg)
		for _, size := range []int{0, 1, 3, 7, 100, 1000} {
			stream := h.records
			if size > 0 {
				stream = records(h.msg, size)
			}
			// Bytes after the hello (CCS, early data) are never read.
			stream = append(bytes.Clone(stream), 20, 3, 3, 0, 1, 1, 23, 3, 3, 0xff, 0xff)
			sniEnd := len(stream)
			if tc.want != "" {
				sniEnd = bytes.Index(bytes.ToLower(stream), []byte(tc.want)) + len(tc.want)
				if size > 0 && size < len(tc.want) {
					sniEnd = -1 // the name is cut by record headers
				}
			}
			found := false
			for i := range len(stream) + 1 {
				got, err := TLSServerName(stream[:i])
				switch {
				case err == ErrNeedMore:
					if found {
						t.Fatalf("%s/%d: prefix %d: ErrNeedMore after the name was found", tc.name, size, i)
					}
					if i == sniEnd {
						t.Fatalf("%s/%d: prefix %d holds the whole name but gives ErrNeedMore", tc.name, size, i)
					}
				default:
					expect(t, tc.name+": prefix", got, err, tc.want, tc.err)
					found = true
				}
			}
			if !found {
				t.Fatalf("%s/%d: no prefix gave a result", tc.name, size)
			}
		}
	}
}

func TestTLSServerNameSpansRecordsWithoutModifyingInput(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "split.example"})
	stream := records(h.msg, 50)
	orig := bytes.Clone(stream)
	wantName(t, "TLSServerName", must(TLSServerName(stream)), nil, "split.example")
	if !bytes.Equal(stream, orig) {
		t.Fatal("TLSServerName modified its input")
	}
}

func TestTLSServerNameRFC9001Hello(t *testing.T) {
	// The ClientHello inside RFC 9001 §A.2's CRYPTO frame, framed as TLS.
	msg := rfc9001Hello()
	wantName(t, "TLSServerName", must(TLSServerName(records(msg, maxRecordPayload))), nil, "example.com")
}

func TestTLSServerNameLargeHello(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "big.example"})
	// A 20 KiB extension before server_name: the name is past MaxPeek.
	msg := withExtension(t, h.msg, 0xfafa, make([]byte, 20<<10))
	stream := records(msg, maxRecordPayload)
	wantName(t, "TLSServerName(all)", must(TLSServerName(stream)), nil, "big.example")
	got, err := TLSServerName(stream[:MaxPeek])
	if err == nil || err == ErrNeedMore {
		t.Fatalf("TLSServerName(first MaxPeek bytes) = %q, %v; want a final error", got, err)
	}
	got, err = TLSServerName(stream[:MaxPeek-1])
	wantErr(t, "TLSServerName(MaxPeek-1 bytes)", got, err, ErrNeedMore)
}

func TestTLSServerNameMalformed(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "example.com"})
	mutate := func(f func(b []byte)) []byte {
		b := records(h.msg, maxRecordPayload)
		f(b)
		return b
	}
	nameAt := bytes.Index(h.records, []byte("example.com"))
	extLenAt := nameAt - 2 - 1 - 2 - 2 // host_name len, name_type, list len, ext data len
	msg := h.msg
	for _, tc := range []struct {
		name string
		in   []byte
		err  error
	}{
		{"empty", nil, ErrNeedMore},
		{"record type only", []byte{22}, ErrNeedMore},
		{"record header only", []byte{22, 3, 1, 0, 10}, ErrNeedMore},
		{"http", []byte("GET / HTTP/1.1\r\n"), errNotTLS},
		{"application data", []byte{23, 3, 3, 0, 5, 1, 2, 3, 4, 5}, errNotTLS},
		{"sslv2 hello", []byte{0x80, 0x2e, 0x01, 0x03, 0x01}, errNotTLS},
		{"bad major version", []byte{22, 2, 0}, errNotTLS},
		{"odd minor version", []byte{22, 3, 9}, ErrNeedMore},
		{"zero-length record", []byte{22, 3, 1, 0, 0}, errMalformed},
		{"oversized record", []byte{22, 3, 1, 0x40, 0x01}, errMalformed},
		{"server hello", records(append([]byte{2}, msg[1:]...), maxRecordPayload), errNotClientHello},
		{"alert inside the hello", append(records(msg[:100], 100), 21, 3, 3, 0, 2, 2, 40), errMalformed},
		{"not tls legacy_version", mutate(func(b []byte) { b[recordHeaderLen+handshakeHeaderLen] = 2 }), errMalformed},
		{"invalid name byte", mutate(func(b []byte) { b[nameAt+3] = '!' }), errMalformed},
		{"extension overruns its list", mutate(func(b []byte) { binary.BigEndian.PutUint16(b[extLenAt:], 0xfff0) }), errMalformed},
		{"hello length shorter than its extensions", records(append([]byte{1, 0, 0, 60}, msg[4:]...), maxRecordPayload), errMalformed},
		{"hello body truncated at the declared end", records(append([]byte{1, 0, 0, 40}, msg[4:44]...), maxRecordPayload), errMalformed},
	} {
		got, err := TLSServerName(tc.in)
		expect(t, "TLSServerName("+tc.name+")", got, err, "", tc.err)
	}
}

func TestTLSServerNameNoExtensions(t *testing.T) {
	// A TLS 1.2 ClientHello may end after compression_methods.
	body := append([]byte{3, 3}, make([]byte, helloRandomLen)...)
	body = append(body, 0, 0, 2, 0x00, 0x2f, 1, 0) // no session id, one suite, null compression
	msg := append([]byte{1, 0, 0, byte(len(body))}, body...)
	got, err := TLSServerName(records(msg, maxRecordPayload))
	wantErr(t, "TLSServerName(no extensions)", got, err, ErrNotFound)
}

func must(name string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return name
}

// rfc9001Hello is the ClientHello of RFC 9001 §A.2 (inside its CRYPTO frame).
func rfc9001Hello() []byte {
	frame := mustHex(`060040f1010000ed0303ebf8fa56f129 39b9584a3896472ec40bb863cfd3e868
		04fe3a47f06a2b69484c000004130113 02010000c000000010000e00000b6578
		616d706c652e636f6dff01000100000a 00080006001d00170018001000070005
		04616c706e0005000501000000000033 00260024001d00209370b2c9caa47fba
		baf4559fedba753de171fa71f50f1ce1 5d43e994ec74d748002b000302030400
		0d0010000e0403050306030203080408 050806002d00020101001c0002400100
		3900320408ffffffffffffffff050480 00ffff07048000ffff08011001048000
		75300901100f088394c8f03e51570806 048000ffff`)
	return frame[4:] // type 06, offset 00, length 40f1
}

func TestTLSServerNameAllocs(t *testing.T) {
	h := captureHello(t, &tls.Config{ServerName: "Alloc.Example"})
	for _, tc := range []struct {
		name   string
		in     []byte
		allocs float64
	}{
		{"one record: only the name", h.records, 1},
		{"several records: the joined hello and the name", records(h.msg, 300), 2},
		{"incomplete: nothing", h.records[:100], 0},
	} {
		if n := testing.AllocsPerRun(50, func() { _, _ = TLSServerName(tc.in) }); n != tc.allocs {
			t.Errorf("%s: %v allocations, want %v", tc.name, n, tc.allocs)
		}
	}
}
