package sniff

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// capturedHello is a ClientHello crypto/tls wrote: the TLS records as sent
// and the handshake message they carry.
type capturedHello struct {
	records []byte
	msg     []byte
}

// captureHello runs a crypto/tls client against a net.Pipe and returns the
// ClientHello it sends; the handshake is then abandoned.
func captureHello(t testing.TB, cfg *tls.Config) capturedHello {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(client, cfg).Handshake() // fails once server closes
		client.Close()
	}()
	defer func() { server.Close(); <-done }()
	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var h capturedHello
	for want := -1; want < 0 || len(h.msg) < want; {
		hdr := make([]byte, recordHeaderLen)
		if _, err := io.ReadFull(server, hdr); err != nil {
			t.Fatalf("reading the ClientHello record header: %v", err)
		}
		payload := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
		if _, err := io.ReadFull(server, payload); err != nil {
			t.Fatalf("reading the ClientHello record: %v", err)
		}
		h.records = append(append(h.records, hdr...), payload...)
		h.msg = append(h.msg, payload...)
		if want < 0 && len(h.msg) >= handshakeHeaderLen {
			want = handshakeHeaderLen + (int(h.msg[1])<<16 | int(h.msg[2])<<8 | int(h.msg[3]))
		}
	}
	return h
}

// quicTransportParams are a client's transport parameters (the ones of
// RFC 9001 §A.2's ClientHello).
var quicTransportParams = mustHex("0408ffffffffffffffff05048000ffff07048000ffff0801100104800075300901100f088394c8f03e51570806048000ffff")

// quicHello returns the ClientHello crypto/tls's QUIC client sends in its
// Initial CRYPTO stream.
func quicHello(t testing.TB, cfg *tls.Config) []byte {
	t.Helper()
	hello, err := quicClientHello(cfg, quicTransportParams)
	if err != nil {
		t.Fatal(err)
	}
	return hello
}

// records frames a handshake message into handshake records of at most
// size payload bytes each.
func records(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordTypeHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// withExtension returns a copy of a ClientHello message with an extension
// inserted before the others.
func withExtension(t testing.TB, msg []byte, typ uint16, data []byte) []byte {
	t.Helper()
	c := cursor{buf: msg, off: handshakeHeaderLen, end: len(msg)}
	for _, step := range []func() error{
		func() error { return c.skip(2 + helloRandomLen) },
		func() error { _, err := c.vector(1); return err },
		func() error { _, err := c.vector(2); return err },
		func() error { _, err := c.vector(1); return err },
	} {
		if err := step(); err != nil {
			t.Fatalf("walking the ClientHello: %v", err)
		}
	}
	extStart := c.off
	extLen := int(binary.BigEndian.Uint16(msg[extStart:]))
	var out []byte
	out = append(out, msg[:extStart]...)
	out = binary.BigEndian.AppendUint16(out, uint16(extLen+4+len(data)))
	out = binary.BigEndian.AppendUint16(out, typ)
	out = binary.BigEndian.AppendUint16(out, uint16(len(data)))
	out = append(out, data...)
	out = append(out, msg[extStart+2:]...)
	bodyLen := len(out) - handshakeHeaderLen
	out[1], out[2], out[3] = byte(bodyLen>>16), byte(bodyLen>>8), byte(bodyLen)
	return out
}

// echConfigList builds an ECHConfigList (draft-ietf-tls-esni-22 §4) for a
// fresh X25519 key, DHKEM(X25519, HKDF-SHA256) with HKDF-SHA256 and
// AES-128-GCM, and the given public name.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	const (
		echVersion  = 0xfe0d
		kemX25519   = 0x0020
		kdfSHA256   = 0x0001
		aeadAES128  = 0x0001
		maxNameHint = 0
	)
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.PublicKey().Bytes()
	var c []byte
	c = append(c, 1) // config_id
	c = binary.BigEndian.AppendUint16(c, kemX25519)
	c = binary.BigEndian.AppendUint16(c, uint16(len(pub)))
	c = append(c, pub...)
	c = binary.BigEndian.AppendUint16(c, 4)
	c = binary.BigEndian.AppendUint16(c, kdfSHA256)
	c = binary.BigEndian.AppendUint16(c, aeadAES128)
	c = append(c, maxNameHint, byte(len(publicName)))
	c = append(c, publicName...)
	c = binary.BigEndian.AppendUint16(c, 0) // no extensions
	var cfg []byte
	cfg = binary.BigEndian.AppendUint16(cfg, echVersion)
	cfg = binary.BigEndian.AppendUint16(cfg, uint16(len(c)))
	cfg = append(cfg, c...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(cfg))), cfg...)
}

// readHexFile reads a testdata file of hex digits, with '#' comment lines
// and blanks ignored.
func readHexFile(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for line := range strings.Lines(string(text)) {
		if !strings.HasPrefix(line, "#") {
			digits.WriteString(strings.Join(strings.Fields(line), ""))
		}
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// ---- QUIC Initial encoder (seal.go) in test form ----

// testPacket is a client Initial packet to protect.
type testPacket = initialPacket

// sealT is p.seal, failing the test on an error.
func sealT(t testing.TB, p testPacket, minSize int) []byte {
	t.Helper()
	b, err := p.seal(minSize)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// datagram seals packets into one datagram: all but the last unpadded, the
// last padded so the datagram has minInitialDatagram bytes.
func datagram(t testing.TB, packets ...testPacket) []byte {
	t.Helper()
	var d []byte
	for i, p := range packets {
		if i < len(packets)-1 {
			d = append(d, sealT(t, p, 0)...)
		} else {
			d = append(d, sealT(t, p, minInitialDatagram-len(d))...)
		}
	}
	return d
}

func cryptoFrame(off int, data []byte) []byte { return appendCryptoFrame(nil, off, data) }

// ---- checks ----

// wantName fails unless the call returned name.
func wantName(t testing.TB, what string, got string, err error, name string) {
	t.Helper()
	if err != nil || got != name {
		t.Fatalf("%s = %q, %v; want %q", what, got, err, name)
	}
}

// wantErr fails unless the call failed with target (any error but
// ErrNeedMore and ErrNotFound if target is nil).
func wantErr(t testing.TB, what string, got string, err, target error) {
	t.Helper()
	switch {
	case target != nil && !errors.Is(err, target):
		t.Fatalf("%s = %q, %v; want error %v", what, got, err, target)
	case target == nil && (err == nil || errors.Is(err, ErrNeedMore) || errors.Is(err, ErrNotFound)):
		t.Fatalf("%s = %q, %v; want a malformed-input error", what, got, err)
	case got != "":
		t.Fatalf("%s returned name %q with error %v", what, got, err)
	}
}

// errMalformed in a test table stands for any error but ErrNeedMore and
// ErrNotFound.
var errMalformed = errors.New("test: any malformed-input error")

// expect checks a result against a table row: name when target is nil,
// else the target error (errMalformed: any malformed-input error).
func expect(t testing.TB, what, got string, err error, name string, target error) {
	t.Helper()
	switch target {
	case nil:
		wantName(t, what, got, err, name)
	case errMalformed:
		wantErr(t, what, got, err, nil)
	default:
		wantErr(t, what, got, err, target)
	}
}

func slicesSort(s []int) { slices.Sort(s) }
