package sniff

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Initial packet protection: AEAD_AES_128_GCM with SHA-256 HKDF (RFC 9001
// §5.2-5.4).
const (
	clientInitialLabel = "client in"
	tls13LabelPrefix   = "tls13 "
	aesKeyLen          = 16 // AES-128, for packet and header protection
	aeadNonceLen       = 12
	aeadTagLen         = 16
	maxPacketNumberLen = 4
	pnNonceLen         = 8  // the 62-bit packet number is XORed into the nonce's last 8 bytes (RFC 9001 §5.3)
	hpSampleLen        = 16 // RFC 9001 §5.4.2
	// long header first-byte bits under header protection, and what they
	// mean once removed
	longProtectedBits = 0x0f
	reservedBits      = 0x0c // must be zero (RFC 9000 §17.2)
	pnLenBits         = 0x03 // packet number length - 1
)

var errOpen = errors.New("quic: Initial packet does not decrypt")

// initialKeys protect the client's Initial packets of one connection.
type initialKeys struct {
	aead cipher.AEAD
	hp   cipher.Block
	iv   [aeadNonceLen]byte
}

// deriveInitialKeys derives the client Initial keys for a Destination
// Connection ID (RFC 9001 §5.2; RFC 9369 §3.3 for v2's salt and labels).
func deriveInitialKeys(v quicVersion, dcid []byte) (*initialKeys, error) {
	initialSecret, err := hkdf.Extract(sha256.New, dcid, []byte(v.salt))
	if err != nil {
		return nil, fmt.Errorf("quic: deriving the initial secret: %w", err)
	}
	secret, err := expandLabel(initialSecret, clientInitialLabel, sha256.Size)
	if err != nil {
		return nil, err
	}
	key, err := expandLabel(secret, v.keyLabel, aesKeyLen)
	if err != nil {
		return nil, err
	}
	iv, err := expandLabel(secret, v.ivLabel, aeadNonceLen)
	if err != nil {
		return nil, err
	}
	hpKey, err := expandLabel(secret, v.hpLabel, aesKeyLen)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("quic: packet protection cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("quic: packet protection AEAD: %w", err)
	}
	hp, err := aes.NewCipher(hpKey)
	if err != nil {
		return nil, fmt.Errorf("quic: header protection cipher: %w", err)
	}
	k := &initialKeys{aead: aead, hp: hp}
	copy(k.iv[:], iv)
	return k, nil
}

// expandLabel is TLS 1.3's HKDF-Expand-Label with an empty context (RFC
// 8446 §7.1).
func expandLabel(secret []byte, label string, length int) ([]byte, error) {
	// HkdfLabel: uint16 length, opaque label<7..255>, opaque context<0..255>.
	info := make([]byte, 0, 2+1+len(tls13LabelPrefix)+len(label)+1)
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(tls13LabelPrefix)+len(label)))
	info = append(info, tls13LabelPrefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(sha256.New, secret, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("quic: expanding %q: %w", label, err)
	}
	return out, nil
}

// open removes header and packet protection from the Initial packet p
// (exactly one packet, header h) and returns its payload, decrypted into
// scratch (grown if needed, returned for reuse), and its full packet
// number, recovered from largest, the largest one seen so far (-1 if
// none). p is not modified.
func (k *initialKeys) open(scratch, p []byte, h *longHeader, largest int64) (payload, newScratch []byte, pn int64, err error) {
	sample := h.pnOffset + maxPacketNumberLen
	if len(p)-sample < hpSampleLen {
		return nil, scratch, 0, fmt.Errorf("quic: Initial packet too short to sample")
	}
	var mask [aes.BlockSize]byte
	k.hp.Encrypt(mask[:], p[sample:sample+hpSampleLen])
	first := p[0] ^ mask[0]&longProtectedBits
	pnLen := int(first&pnLenBits) + 1
	pnEnd := h.pnOffset + pnLen
	if cap(scratch) < len(p) {
		scratch = make([]byte, 0, len(p))
	}
	hdr := append(scratch[:0], p[:pnEnd]...)
	hdr[0] = first
	var truncated uint64
	for i := range pnLen {
		hdr[h.pnOffset+i] ^= mask[1+i]
		truncated = truncated<<8 | uint64(hdr[h.pnOffset+i])
	}
	pn = decodePacketNumber(largest, truncated, pnLen)
	nonce := k.iv
	for i := range pnNonceLen {
		nonce[aeadNonceLen-1-i] ^= byte(pn >> (8 * i))
	}
	payload, err = k.aead.Open(hdr[pnEnd:pnEnd], nonce[:], p[pnEnd:], hdr)
	if err != nil {
		return nil, scratch, 0, errOpen
	}
	if first&reservedBits != 0 {
		return nil, scratch, 0, fmt.Errorf("quic: reserved header bits set")
	}
	return payload, scratch, pn, nil
}

// decodePacketNumber recovers a full packet number from its truncated
// encoding (RFC 9000 §A.3).
func decodePacketNumber(largest int64, truncated uint64, pnLen int) int64 {
	const maxPacketNumber = 1<<62 - 1
	expected := largest + 1
	win := int64(1) << (8 * pnLen)
	hwin := win / 2
	candidate := expected&^(win-1) | int64(truncated)
	switch {
	case candidate <= expected-hwin && candidate < maxPacketNumber+1-win:
		return candidate + win
	case candidate > expected+hwin && candidate >= win:
		return candidate - win
	}
	return candidate
}
