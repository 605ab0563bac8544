package sniff

import (
	"errors"
	"fmt"
)

// TLS record layer (RFC 8446 §5.1).
const (
	recordHeaderLen     = 5  // type (1) + legacy_record_version (2) + length (2)
	recordTypeHandshake = 22 // ContentType handshake
	maxRecordPayload    = 1 << 14
)

var errNotTLS = errors.New("tls: not a handshake record")

// TLSServerName returns the SNI host_name of the TLS ClientHello that b, the
// start of a client's byte stream, begins with. The ClientHello may span
// several handshake records and b may end anywhere: the name is returned as
// soon as its extension has arrived, ErrNeedMore if it has not yet.
// ErrNotFound: the complete hello has no host_name (or an IP address). With
// Encrypted Client Hello (ECH) the name is the outer ClientHello's, the
// public name of the client-facing server; the name the client really wants
// is encrypted and cannot be sniffed. Records after the ClientHello are
// ignored. Only the result is allocated, plus one buffer when the part of
// the hello that has arrived spans records.
func TLSServerName(b []byte) (string, error) {
	msg, err := handshakeBytes(b)
	if err != nil {
		return capNeedMore(len(b), "", err)
	}
	name, err := helloServerName(msg)
	return capNeedMore(len(b), name, err)
}

// handshakeBytes returns the handshake-layer bytes that have arrived in b,
// the payloads of its leading handshake records joined, up to the end of
// the first handshake message once its length is known. It returns a
// sub-slice of b while they come from one record and copies otherwise; b is
// never written.
func handshakeBytes(b []byte) ([]byte, error) {
	var msg []byte
	want := -1 // length of the first handshake message with its header, once known
	copied := false
	for off, records := 0, 0; off < len(b) && (want < 0 || len(msg) < want); records++ {
		n, err := recordHeader(b[off:], records == 0)
		if err == ErrNeedMore && records > 0 {
			break // parse what has arrived: the name may be in it
		}
		if err != nil {
			if records > 0 {
				err = fmt.Errorf("record %d after %d handshake bytes: %w", records+1, len(msg), err)
			}
			return nil, err
		}
		start := off + recordHeaderLen
		off = min(start+n, len(b))
		payload := b[start:off]
		if want >= 0 {
			payload = payload[:min(len(payload), want-len(msg))]
		}
		switch {
		case records == 0:
			msg = payload
		case !copied:
			msg = append(make([]byte, 0, max(want, len(msg)+len(payload))), msg...)
			copied = true
			fallthrough
		default:
			msg = append(msg, payload...)
		}
		if want < 0 && len(msg) >= handshakeHeaderLen {
			want = handshakeHeaderLen + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			msg = msg[:min(len(msg), want)]
		}
	}
	if len(msg) == 0 {
		return nil, ErrNeedMore
	}
	return msg, nil
}

// recordHeader checks the header of a handshake record at the start of b
// (of which only a part may have arrived) and returns its payload length.
// The first record must carry a 3.x version, which is how TLS is told from
// other protocols; clients send 3.1 or 3.3 there. Servers ignore the
// version of the records until they have chosen one (crypto/tls does), so
// later records may carry any.
func recordHeader(b []byte, first bool) (int, error) {
	if b[0] != recordTypeHandshake {
		return 0, errNotTLS
	}
	if first && len(b) > 1 && b[1] != tlsMajorVersion {
		return 0, errNotTLS
	}
	if len(b) < recordHeaderLen {
		return 0, ErrNeedMore
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > maxRecordPayload {
		// RFC 8446 §5.1: handshake records are never empty and carry at
		// most 2^14 bytes.
		return 0, fmt.Errorf("tls: handshake record of %d bytes", n)
	}
	return n, nil
}
