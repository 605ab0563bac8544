package sniff

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// QUIC long header layout (RFC 9000 §17.2, RFC 9369 §3).
const (
	headerFormLong = 0x80 // first-byte bit set on long-header packets
	longTypeShift  = 4    // long packet type: bits 5-4 of the first byte
	longTypeMask   = 0x3
	longPrefixLen  = 1 + 4 // first byte + version
	maxConnIDLen   = 20    // RFC 9000 §17.2: at most 20 bytes in versions 1 and 2

	varintLenShift  = 6
	varintValueMask = 0x3f
)

// QUIC versions whose Initial packets can be opened.
const (
	quicV1 = 0x00000001 // RFC 9000
	quicV2 = 0x6b3343cf // RFC 9369
)

// quicVersion is what differs between the versions for a client Initial.
type quicVersion struct {
	number      uint32
	salt        string // initial_salt (RFC 9001 §5.2, RFC 9369 §3.3.1)
	initialType byte   // long packet type of Initial packets
	retryType   byte   // of Retry packets, which have no Length field
	keyLabel    string // HKDF labels for the packet and header protection keys
	ivLabel     string
	hpLabel     string
}

func lookupVersion(v uint32) (quicVersion, bool) {
	switch v {
	case quicV1:
		return quicVersion{
			number:      v,
			salt:        "\x38\x76\x2c\xf7\xf5\x59\x34\xb3\x4d\x17\x9a\xe6\xa4\xc8\x0c\xad\xcc\xbb\x7f\x0a",
			initialType: 0b00,
			retryType:   0b11,
			keyLabel:    "quic key",
			ivLabel:     "quic iv",
			hpLabel:     "quic hp",
		}, true
	case quicV2:
		return quicVersion{
			number:      v,
			salt:        "\x0d\xed\xe3\xde\xf7\x00\xa6\xdb\x81\x93\x81\xbe\x6e\x26\x9d\xcb\xf9\xbd\x2e\xd9",
			initialType: 0b01,
			retryType:   0b00,
			keyLabel:    "quicv2 key",
			ivLabel:     "quicv2 iv",
			hpLabel:     "quicv2 hp",
		}, true
	}
	return quicVersion{}, false
}

var errShortHeader = errors.New("quic: truncated long header")

// longHeader is the still protected header of a long-header packet.
type longHeader struct {
	version    quicVersion
	packetType byte
	dcid       []byte
	pnOffset   int // where the protected packet number starts
	end        int // where the packet ends; coalesced packets may follow
}

func (h *longHeader) initial() bool { return h.packetType == h.version.initialType }

// parseLongHeader reads the long header at the start of b (the first byte
// has headerFormLong set) up to its Length field. The Fixed Bit is not
// checked: RFC 9287 lets clients clear it.
func parseLongHeader(b []byte) (longHeader, error) {
	if len(b) < longPrefixLen {
		return longHeader{}, errShortHeader
	}
	v, ok := lookupVersion(binary.BigEndian.Uint32(b[1:longPrefixLen]))
	if !ok {
		return longHeader{}, fmt.Errorf("quic: version 0x%08x is not QUIC v1 or v2", binary.BigEndian.Uint32(b[1:longPrefixLen]))
	}
	h := longHeader{version: v, packetType: b[0] >> longTypeShift & longTypeMask}
	if h.packetType == v.retryType {
		return longHeader{}, fmt.Errorf("quic: Retry packet from a client")
	}
	off := longPrefixLen
	var err error
	if h.dcid, off, err = connID(b, off); err != nil {
		return longHeader{}, err
	}
	if _, off, err = connID(b, off); err != nil {
		return longHeader{}, err
	}
	if h.initial() {
		tokenLen, n := readVarint(b[off:])
		if n == 0 || tokenLen > uint64(len(b)-off-n) {
			return longHeader{}, errShortHeader
		}
		off += n + int(tokenLen)
	}
	length, n := readVarint(b[off:])
	if n == 0 || length > uint64(len(b)-off-n) {
		return longHeader{}, errShortHeader
	}
	h.pnOffset = off + n
	h.end = h.pnOffset + int(length)
	return h, nil
}

// connID reads a length-prefixed connection ID at b[off:].
func connID(b []byte, off int) (id []byte, next int, err error) {
	if off >= len(b) {
		return nil, 0, errShortHeader
	}
	n := int(b[off])
	if n > maxConnIDLen {
		return nil, 0, fmt.Errorf("quic: connection ID of %d bytes", n)
	}
	off++
	if n > len(b)-off {
		return nil, 0, errShortHeader
	}
	return b[off : off+n], off + n, nil
}

// readVarint reads a QUIC variable-length integer (RFC 9000 §16) and
// returns it and its length; the length is 0 if b is too short.
func readVarint(b []byte) (uint64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	n := 1 << (b[0] >> varintLenShift) // the two high bits give the length: 1, 2, 4 or 8
	if len(b) < n {
		return 0, 0
	}
	v := uint64(b[0] & varintValueMask)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}
