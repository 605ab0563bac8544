package sniff

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// QUICClientHello returns the ClientHello crypto/tls's QUIC client sends
// for serverName (TLS 1.3, ALPN h3): what SealClientInitials wraps. With
// Go's default post-quantum key share it is larger than one Initial holds.
func QUICClientHello(serverName string) ([]byte, error) {
	return quicClientHello(&tls.Config{ServerName: serverName}, []byte{0x04, 0x04, 0x80, 0x10, 0x00, 0x00})
}

// quicClientHello runs a crypto/tls QUIC client for cfg (TLS 1.3, ALPN h3
// unless cfg names protocols) up to its Initial CRYPTO data; params are
// its transport parameters.
func quicClientHello(cfg *tls.Config, params []byte) ([]byte, error) {
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS13
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"h3"}
	}
	q := tls.QUICClient(&tls.QUICConfig{TLSConfig: cfg})
	defer q.Close()
	q.SetTransportParameters(params)
	if err := q.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("starting the QUIC TLS client: %w", err)
	}
	var hello []byte
	for e := q.NextEvent(); e.Kind != tls.QUICNoEvent; e = q.NextEvent() {
		if e.Kind == tls.QUICWriteData && e.Level == tls.QUICEncryptionLevelInitial {
			hello = append(hello, e.Data...)
		}
	}
	if len(hello) == 0 {
		return nil, errors.New("the QUIC TLS client wrote no Initial data")
	}
	return hello, nil
}

// SealClientInitials returns the datagrams a QUIC v1 client sends to open a
// connection whose TLS ClientHello is hello: one Initial packet per
// datagram, each carrying the piece of hello up to the next cut (increasing
// offsets into hello) in a CRYPTO frame, padded to the 1200 bytes a
// client's Initial datagram must have. dcid is the client's Destination
// Connection ID (8 to 20 bytes). gatewayd only reads Initials; this builds
// real ones for the relay's tests, where a ClientHello must span datagrams.
func SealClientInitials(dcid, hello []byte, cuts ...int) ([][]byte, error) {
	if len(dcid) < 8 || len(dcid) > 20 || len(hello) == 0 {
		return nil, errors.New("quic: sealing Initials needs an 8 to 20-byte DCID and a ClientHello")
	}
	var out [][]byte
	off := 0
	for i, end := range append(slices.Clip(cuts), len(hello)) { // never into the caller's array
		if end <= off || end > len(hello) {
			return nil, fmt.Errorf("quic: cut %d at %d: not after %d and within the %d-byte ClientHello", i, end, off, len(hello))
		}
		p := initialPacket{dcid: dcid, pn: uint64(i), frames: appendCryptoFrame(nil, off, hello[off:end])}
		d, err := p.seal(minInitialDatagram)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		off = end
	}
	return out, nil
}

// initialPacket is a client Initial packet to protect.
type initialPacket struct {
	version uint32 // quicV1 if zero
	dcid    []byte
	keyDCID []byte // DCID the keys derive from; dcid if nil
	scid    []byte
	token   []byte
	pn      uint64
	pnLen   int // 1 to 4; 4 if zero
	frames  []byte
	typ     *byte // long packet type; the version's Initial type if nil
}

// seal protects p (RFC 9001 §5), padding its payload with PADDING frames so
// the packet is at least minSize bytes.
func (p initialPacket) seal(minSize int) ([]byte, error) {
	if p.version == 0 {
		p.version = quicV1
	}
	if p.pnLen == 0 {
		p.pnLen = maxPacketNumberLen
	}
	if p.keyDCID == nil {
		p.keyDCID = p.dcid
	}
	v, ok := lookupVersion(p.version)
	if !ok {
		return nil, fmt.Errorf("quic: version 0x%08x", p.version)
	}
	typ := v.initialType
	if p.typ != nil {
		typ = *p.typ
	}
	hdr := []byte{headerFormLong | 0x40 | typ<<longTypeShift | byte(p.pnLen-1)}
	hdr = binary.BigEndian.AppendUint32(hdr, p.version)
	hdr = append(append(hdr, byte(len(p.dcid))), p.dcid...)
	hdr = append(append(hdr, byte(len(p.scid))), p.scid...)
	if typ == v.initialType {
		hdr = appendVarint(hdr, uint64(len(p.token)))
		hdr = append(hdr, p.token...)
	}
	const lengthFieldLen = 2 // always a 2-byte varint
	payload := p.frames
	if short := minSize - (len(hdr) + lengthFieldLen + p.pnLen + len(payload) + aeadTagLen); short > 0 {
		payload = append(bytes.Clone(payload), make([]byte, short)...)
	}
	if n := maxPacketNumberLen - p.pnLen - len(payload); n > 0 {
		payload = append(bytes.Clone(payload), make([]byte, n)...) // room for the sample
	}
	length := p.pnLen + len(payload) + aeadTagLen
	hdr = append(hdr, 0x40|byte(length>>8), byte(length))
	pnOffset := len(hdr)
	for i := p.pnLen - 1; i >= 0; i-- {
		hdr = append(hdr, byte(p.pn>>(8*i)))
	}
	keys, err := deriveInitialKeys(v, p.keyDCID)
	if err != nil {
		return nil, err
	}
	nonce := keys.iv
	for i := range pnNonceLen {
		nonce[aeadNonceLen-1-i] ^= byte(p.pn >> (8 * i))
	}
	ct := keys.aead.Seal(nil, nonce[:], payload, hdr)
	var mask [aes.BlockSize]byte
	sample := maxPacketNumberLen - p.pnLen
	keys.hp.Encrypt(mask[:], ct[sample:sample+hpSampleLen])
	hdr[0] ^= mask[0] & longProtectedBits
	for i := range p.pnLen {
		hdr[pnOffset+i] ^= mask[1+i]
	}
	return append(hdr, ct...), nil
}

func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, 0x80<<24|uint32(v))
	}
	return binary.BigEndian.AppendUint64(b, 0xc0<<56|v)
}

func appendCryptoFrame(b []byte, off int, data []byte) []byte {
	b = appendVarint(append(b, frameCrypto), uint64(off))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}
