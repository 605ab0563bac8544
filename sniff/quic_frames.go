package sniff

import (
	"errors"
	"fmt"
	"slices"
)

// Frame types a client may send in Initial packets (RFC 9000 §12.4). All
// are below 0x40, so their (shortest) varint encoding is one byte.
const (
	framePadding         = 0x00
	framePing            = 0x01
	frameAck             = 0x02
	frameAckECN          = 0x03
	frameCrypto          = 0x06
	frameConnectionClose = 0x1c
)

// CRYPTO stream reassembly limits. The ClientHello is the only message in
// the client's Initial CRYPTO stream, so the stream is bounded like a TCP
// peek. Chrome cuts its ClientHello into a handful of CRYPTO frames and
// shuffles them; 32 disjoint pieces are far more than any client sends.
const (
	maxCryptoStream = MaxPeek
	maxCryptoPieces = 32
)

var errConnectionClose = errors.New("quic: client closed the connection in its Initial packet")

// readFrames reads the frames of a decrypted Initial packet payload and
// adds CRYPTO data to cs.
func readFrames(p []byte, cs *cryptoStream) error {
	for len(p) > 0 {
		typ := p[0]
		p = p[1:]
		switch typ {
		case framePadding, framePing:
		case frameAck, frameAckECN:
			var err error
			if p, err = skipAck(p, typ == frameAckECN); err != nil {
				return err
			}
		case frameCrypto:
			off, n := readVarint(p)
			if n == 0 {
				return fmt.Errorf("quic: truncated CRYPTO frame")
			}
			length, m := readVarint(p[n:])
			if m == 0 || length > uint64(len(p)-n-m) {
				return fmt.Errorf("quic: truncated CRYPTO frame")
			}
			data := p[n+m : n+m+int(length)]
			p = p[n+m+int(length):]
			if err := cs.add(off, data); err != nil {
				return err
			}
		case frameConnectionClose:
			return errConnectionClose
		default:
			return fmt.Errorf("quic: frame type 0x%02x in an Initial packet", typ)
		}
	}
	return nil
}

// skipAck skips the body of an ACK frame (RFC 9000 §19.3). Every field
// takes at least one byte, so the loop is bounded by len(p).
func skipAck(p []byte, ecn bool) ([]byte, error) {
	// Largest Acknowledged, ACK Delay, ACK Range Count, First ACK Range.
	var fields [4]uint64
	for i := range fields {
		v, n := readVarint(p)
		if n == 0 {
			return nil, fmt.Errorf("quic: truncated ACK frame")
		}
		fields[i], p = v, p[n:]
	}
	ranges := 2 * fields[2] // Gap and ACK Range Length per range
	if ecn {
		ranges += 3 // ECT0, ECT1 and ECN-CE counts
	}
	for ; ranges > 0; ranges-- {
		_, n := readVarint(p)
		if n == 0 {
			return nil, fmt.Errorf("quic: truncated ACK frame")
		}
		p = p[n:]
	}
	return p, nil
}

// cryptoStream reassembles the Initial CRYPTO stream from frames arriving
// in any order, possibly overlapping.
type cryptoStream struct {
	buf  []byte      // buf[i] is stream byte i where a piece covers it
	have []byteRange // pieces received: sorted, disjoint, not adjacent
}

type byteRange struct{ start, end int }

func (s *cryptoStream) add(off uint64, data []byte) error {
	if off > maxCryptoStream || uint64(len(data)) > maxCryptoStream-off {
		return fmt.Errorf("quic: CRYPTO data beyond the first %d bytes of the stream", maxCryptoStream)
	}
	if len(data) == 0 {
		return nil
	}
	start, end := int(off), int(off)+len(data)
	if end > len(s.buf) {
		if end > cap(s.buf) {
			grown := make([]byte, end, min(max(end, 2*cap(s.buf)), maxCryptoStream))
			copy(grown, s.buf)
			s.buf = grown
		}
		s.buf = s.buf[:end]
	}
	copy(s.buf[start:end], data)
	return s.insert(byteRange{start, end})
}

// insert merges r into the received pieces.
func (s *cryptoStream) insert(r byteRange) error {
	i := 0 // first piece that touches or follows r
	for i < len(s.have) && s.have[i].end < r.start {
		i++
	}
	j := i // first piece after r, not touching it
	for j < len(s.have) && s.have[j].start <= r.end {
		r.start = min(r.start, s.have[j].start)
		r.end = max(r.end, s.have[j].end)
		j++
	}
	if i == j && len(s.have) == maxCryptoPieces {
		return fmt.Errorf("quic: CRYPTO stream in more than %d pieces", maxCryptoPieces)
	}
	s.have = slices.Replace(s.have, i, j, r)
	return nil
}

// prefix returns the contiguous part of the stream from offset 0.
func (s *cryptoStream) prefix() []byte {
	if len(s.have) == 0 || s.have[0].start != 0 {
		return nil
	}
	return s.buf[:s.have[0].end]
}
