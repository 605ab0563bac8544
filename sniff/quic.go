package sniff

import (
	"bytes"
	"errors"
	"fmt"
)

// QUIC sniffing bounds.
const (
	// minInitialDatagram: servers drop Initial packets in smaller
	// datagrams (RFC 9000 §14.1), so no handshake can start from one.
	minInitialDatagram = 1200
	// maxSniffDatagrams bounds the datagrams a QUICSniffer reads. A
	// ClientHello of MaxPeek bytes fills at most 14 Initial packets of 1200
	// bytes; a client sends its first flight once and retransmits it after
	// a timeout, so a hello not complete after 16 datagrams never will be.
	maxSniffDatagrams = 16
	// maxKeySets bounds the Initial key derivations per flow: the first
	// Initial's DCID, the DCID a Retry gave (RFC 9001 §5.2), and one more
	// for a version switch (RFC 9368), with room for one retry of each.
	maxKeySets = 4
)

var (
	errNoInitial = errors.New("quic: no Initial packet in the datagram")
	errGaveUp    = fmt.Errorf("quic: ClientHello not complete after %d datagrams", maxSniffDatagrams)
)

// QUICServerName returns the SNI of the TLS ClientHello carried in the
// QUIC v1 or v2 Initial packets of b, a client's first datagram (RFC 9000,
// 9001, 9369). Coalesced packets are read, CRYPTO frames reassembled in any
// order. ErrNeedMore: the datagram is a valid Initial but the ClientHello
// continues in later datagrams (post-quantum key shares make it larger
// than one packet); feed the flow's datagrams to a QUICSniffer instead.
func QUICServerName(b []byte) (string, error) {
	var s QUICSniffer
	return s.Feed(b)
}

// QUICSniffer reads the SNI from the successive datagrams a client sends
// on one QUIC flow. The zero value is ready to use; it is not safe for
// concurrent use. Feed returns ErrNeedMore until the ClientHello is
// complete enough to hold the name; the first other result is final and
// every later Feed returns it again. It gives up after 16 datagrams.
//
// Initial keys come from the first Initial packet's Destination Connection
// ID and stay in use when the client moves to the server's connection ID.
// Keys for a new DCID (after a Retry) or version are derived only when the
// known keys fail, at most four times per flow. Later datagrams that hold
// no Initial packet these keys open (0-RTT, corrupted or foreign packets)
// are skipped, counting toward the bound.
type QUICSniffer struct {
	keys      []keySet
	largestPN int64 // largest packet number opened, plus one (0: none yet)
	crypto    cryptoStream
	scratch   []byte
	datagrams int
	opened    bool // an Initial packet has been opened

	done bool // name and err are final
	name string
	err  error
}

// keySet is the Initial keys for one (version, DCID).
type keySet struct {
	version uint32
	dcid    []byte
	keys    *initialKeys
}

// Feed reads the next datagram of the flow. The datagram is not retained
// or modified.
func (s *QUICSniffer) Feed(datagram []byte) (string, error) {
	if s.done {
		return s.name, s.err
	}
	s.datagrams++
	name, err := "", s.readDatagram(datagram)
	if err == nil {
		name, err = helloServerName(s.crypto.prefix())
	}
	if err == ErrNeedMore && s.datagrams >= maxSniffDatagrams {
		err = errGaveUp
	}
	if err != ErrNeedMore {
		s.done, s.name, s.err = true, name, err
		s.keys, s.scratch, s.crypto = nil, nil, cryptoStream{}
	}
	return name, err
}

// readDatagram opens the Initial packets of one datagram and adds their
// CRYPTO data to the stream. Packets that fail to parse or open are
// skipped; if none opens, the first failure is returned for the flow's
// first datagram, and ErrNeedMore (skip it) for later ones.
func (s *QUICSniffer) readDatagram(d []byte) error {
	var (
		firstDCID []byte
		firstErr  error
		opened    bool
	)
	for off := 0; off < len(d) && d[off]&headerFormLong != 0; {
		// A short-header packet, or padding after the last long-header
		// packet, ends the datagram's long-header packets.
		p := d[off:]
		h, err := parseLongHeader(p)
		if err != nil {
			firstErr = firstOf(firstErr, err)
			break // the packet's length is unknown: nothing after it can be found
		}
		off += h.end
		if firstDCID == nil {
			firstDCID = h.dcid
		} else if !bytes.Equal(h.dcid, firstDCID) {
			continue // RFC 9000 §12.2: coalesced packets share one DCID
		}
		if !h.initial() {
			firstErr = firstOf(firstErr, errNoInitial)
			continue // 0-RTT or Handshake
		}
		if len(d) < minInitialDatagram {
			firstErr = firstOf(firstErr, fmt.Errorf("quic: Initial packet in a %d-byte datagram, less than %d", len(d), minInitialDatagram))
			continue
		}
		payload, err := s.open(p[:h.end], &h)
		if err != nil {
			firstErr = firstOf(firstErr, err)
			continue
		}
		opened, s.opened = true, true
		if err := readFrames(payload, &s.crypto); err != nil {
			return err
		}
	}
	switch {
	case opened:
		return nil
	case s.opened:
		return ErrNeedMore
	case firstErr != nil:
		return firstErr
	}
	return errNoInitial
}

// open decrypts an Initial packet with the flow's keys, deriving keys for
// the packet's version and DCID, and for its version and the first DCID,
// when those fail.
func (s *QUICSniffer) open(p []byte, h *longHeader) ([]byte, error) {
	for _, ks := range s.keys {
		if ks.version == h.version.number {
			if payload, err := s.openWith(ks.keys, p, h); err == nil {
				return payload, nil
			}
		}
	}
	candidates := [][]byte{h.dcid}
	if len(s.keys) > 0 && !bytes.Equal(s.keys[0].dcid, h.dcid) {
		candidates = append(candidates, s.keys[0].dcid)
	}
	err := errOpen
	for _, dcid := range candidates {
		if s.known(h.version.number, dcid) {
			continue
		}
		if len(s.keys) == maxKeySets {
			return nil, fmt.Errorf("quic: no Initial keys open the packet after %d derivations", maxKeySets)
		}
		keys, derr := deriveInitialKeys(h.version, dcid)
		if derr != nil {
			return nil, derr
		}
		s.keys = append(s.keys, keySet{version: h.version.number, dcid: bytes.Clone(dcid), keys: keys})
		var payload []byte
		if payload, err = s.openWith(keys, p, h); err == nil {
			return payload, nil
		}
	}
	return nil, err
}

func (s *QUICSniffer) openWith(k *initialKeys, p []byte, h *longHeader) ([]byte, error) {
	payload, scratch, pn, err := k.open(s.scratch, p, h, s.largestPN-1)
	s.scratch = scratch
	if err != nil {
		return nil, err
	}
	s.largestPN = max(s.largestPN, pn+1)
	return payload, nil
}

// known reports whether keys for version and dcid have been derived.
func (s *QUICSniffer) known(version uint32, dcid []byte) bool {
	for _, ks := range s.keys {
		if ks.version == version && bytes.Equal(ks.dcid, dcid) {
			return true
		}
	}
	return false
}

// firstOf returns the first non-nil error.
func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
