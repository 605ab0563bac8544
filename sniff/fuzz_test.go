package sniff

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkResult fails on results no input may produce: a name that is not
// normalized, a name with an error, or ErrNeedMore for a TCP peek of
// MaxPeek bytes.
func checkResult(t *testing.T, b []byte, name string, err error, tcp bool) {
	t.Helper()
	if err != nil {
		if name != "" {
			t.Fatalf("name %q returned with error %v", name, err)
		}
		if tcp && err == ErrNeedMore && len(b) >= MaxPeek {
			t.Fatalf("ErrNeedMore for %d bytes", len(b))
		}
		return
	}
	if again, err := normalizeName([]byte(name)); err != nil || again != name {
		t.Fatalf("returned name %q is not normalized: %q, %v", name, again, err)
	}
}

func FuzzTLSServerName(f *testing.F) {
	for _, tc := range helloCases() {
		h := captureHello(f, tc.cfg)
		f.Add(h.records)
		f.Add(records(h.msg, 7))
		f.Add(h.records[:len(h.records)/2])
	}
	f.Add(records(rfc9001Hello(), maxRecordPayload))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := TLSServerName(b)
		checkResult(t, b, name, err, true)
		checkAgainstStdlibTLS(t, b, name, err)
		if !bytes.Equal(b, orig) {
			t.Fatal("TLSServerName modified its input")
		}
	})
}

func FuzzHTTPHost(f *testing.F) {
	for _, tc := range httpCases(f) {
		f.Add(tc.in)
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: [2001:2::1]:80\r\n\r\n"))
	f.Add([]byte("CONNECT 198.18.0.1:443 HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a.example\r\n continued\r\nHost: b.example\r\n\r\n"))
	f.Add([]byte("GET / HTTP/2.0\r\nHost: a.example\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := HTTPHost(b)
		checkResult(t, b, name, err, true)
		checkAgainstStdlibHTTP(t, b, name, err)
		if err == nil && !bytes.Contains(bytes.ToLower(b), []byte(name)) {
			t.Fatalf("name %q is not in the request", name)
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("HTTPHost modified its input")
		}
		sname, serr := Sniff(ProtoTCP, b)
		if len(b) > 0 && b[0] != recordTypeHandshake && (sname != name || errText(serr) != errText(err)) {
			t.Fatalf("Sniff(tcp) = %q, %v; HTTPHost = %q, %v", sname, serr, name, err)
		}
	})
}

func FuzzQUICServerName(f *testing.F) {
	f.Add(readHexFile(f, "rfc9001-a2-client-initial.hex"))
	f.Add(readHexFile(f, "rfc9369-a2-client-initial.hex"))
	hello := quicHello(f, &tls.Config{ServerName: "fuzz.example"})
	dcid := mustHex("0102030405060708")
	f.Add(datagram(f, testPacket{dcid: dcid, frames: cryptoFrame(0, hello)}))
	f.Add(datagram(f, testPacket{version: quicV2, dcid: dcid, pnLen: 1, frames: cryptoFrame(0, hello[:900])}))
	f.Add(datagram(f,
		testPacket{dcid: dcid, frames: cryptoFrame(700, hello[700:])},
		testPacket{dcid: dcid, pn: 1, frames: cryptoFrame(0, hello[:700])}))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		name, err := QUICServerName(b)
		checkResult(t, b, name, err, false)
		if !bytes.Equal(b, orig) {
			t.Fatal("QUICServerName modified its input")
		}
	})
}

// FuzzQUICPayload fuzzes what is inside the encryption, which random
// datagrams never reach: two Initial packet payloads (frames) are sealed
// and fed to a QUICSniffer as two datagrams.
func FuzzQUICPayload(f *testing.F) {
	const maxPayload = 4000 // keeps the 2-byte Length field of testPacket valid
	hello := quicHello(f, &tls.Config{ServerName: "payload.example"})
	rng := rand.New(rand.NewPCG(1, 2))
	packets := pack(splitFrames(rng, hello), packetRoom)
	f.Add(packets[0], packets[1])
	f.Add(cryptoFrame(0, rfc9001Hello()), []byte{framePing})
	f.Add([]byte{frameAckECN, 5, 0, 1, 0, 0, 1, 0, 0, 0}, cryptoFrame(0, hello))
	f.Fuzz(func(t *testing.T, p1, p2 []byte) {
		if len(p1) > maxPayload || len(p2) > maxPayload {
			return
		}
		dcid := mustHex("0102030405060708")
		var s QUICSniffer
		name, err := s.Feed(datagram(t, testPacket{dcid: dcid, frames: p1}))
		checkResult(t, nil, name, err, false)
		if err == ErrNeedMore {
			name, err = s.Feed(datagram(t, testPacket{dcid: dcid, pn: 1, frames: p2}))
			checkResult(t, nil, name, err, false)
		}
	})
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzQUICReassembly feeds a QUICSniffer datagrams the input describes,
// each a sealed Initial packet of CRYPTO frames cutting pieces of a real
// ClientHello at any offsets, in any order, overlapping, or a corrupted
// packet, which the sniffer skips. A model tracks which stream bytes
// arrived: after every datagram the sniffer returns exactly what the
// ClientHello's complete prefix gives (ErrNeedMore, then the name), gives
// up after 16 datagrams, fails when a frame would make a 33rd disjoint
// piece, and is final after its first other result. While it waits, its
// reassembly holds the model's pieces (sorted, disjoint, not adjacent)
// with the ClientHello's bytes in them.
//
// The input is read 5 bytes at a time: a control byte (0x80: start a new
// datagram, 0x40: feed a corrupted packet, 0x03: packet number length
// minus 1), then the frame's offset and length, 2 bytes each, reduced to
// the ClientHello and the room left in the packet.
func FuzzQUICReassembly(f *testing.F) {
	hello := quicHello(f, &tls.Config{ServerName: "reassembly.example"})
	// What the complete prefix of each length gives.
	type outcome struct {
		name string
		err  error
	}
	prefix := make([]outcome, len(hello)+1)
	for i := range prefix {
		prefix[i].name, prefix[i].err = helloServerName(hello[:i])
	}
	op := func(ctl byte, off, n int) []byte {
		return []byte{ctl, byte(off >> 8), byte(off), byte(n >> 8), byte(n)}
	}
	sni := bytes.Index(hello, []byte("reassembly.example"))
	f.Add(slices.Concat(op(0, 0, 1100), op(0x80, 1100, 0xffff)), false)
	f.Add(slices.Concat(op(0, sni+4, 0xffff), op(0xc0, 0, 0), op(0x81, 0, sni+4)), true)
	f.Add(slices.Concat(op(0, 10, 5), op(0, 12, 10), op(0, 30, 1), op(0, 0, 10), op(0x83, 40, 1000), op(0x82, 20, 20)), false)
	var scattered []byte
	for i := range maxCryptoPieces + 1 {
		scattered = append(scattered, op(0, 2*i+1, 1)...)
	}
	f.Add(scattered, false)
	dcid := mustHex("0102030405060708")
	f.Fuzz(func(t *testing.T, ops []byte, v2 bool) {
		if len(ops) > 5*64 {
			return
		}
		version := uint32(quicV1)
		if v2 {
			version = quicV2
		}
		var (
			s        QUICSniffer
			have     = make([]bool, len(hello)) // the model: stream bytes received
			frames   []byte                     // of the packet being built
			pieceErr bool                       // a frame in it exceeds the pieces bound
			fed      int
			done     bool
			ctl      byte
		)
		// feed seals frames (corrupted if junk) into one datagram, feeds
		// it and checks the result against the model.
		feed := func(junk bool) {
			if done {
				return
			}
			g := datagram(t, testPacket{version: version, dcid: dcid, pn: uint64(fed), pnLen: 1 + int(ctl&3), frames: frames})
			if junk {
				g[len(g)-1] ^= 1 // the AEAD tag no longer matches
			}
			fed++
			name, err := s.Feed(g)
			var want outcome
			switch {
			case junk && fed == 1:
				want.err = errMalformed // nothing opened: not a QUIC Initial flow
			case pieceErr:
				want.err = errMalformed
			case junk:
				want.err = ErrNeedMore
			default:
				n := 0
				for n < len(have) && have[n] {
					n++
				}
				want = prefix[n]
			}
			if want.err == ErrNeedMore && fed >= maxSniffDatagrams {
				want.err = errGaveUp
			}
			if want.err == errMalformed {
				if err == nil || err == ErrNeedMore || err == errGaveUp || name != "" {
					t.Fatalf("datagram %d: %q, %v; want a malformed-input error", fed, name, err)
				}
			} else if name != want.name || err != want.err {
				t.Fatalf("datagram %d: %q, %v; want %q, %v", fed, name, err, want.name, want.err)
			}
			if done = err != ErrNeedMore; done {
				if n2, err2 := s.Feed(g); n2 != name || err2 != err {
					t.Fatalf("after the final %q, %v: %q, %v", name, err, n2, err2)
				}
				return
			}
			checkCryptoStream(t, &s.crypto, have, hello)
			frames, pieceErr = nil, false
		}
		for len(ops) >= 5 && !done {
			ctl = ops[0]
			off := int(binary.BigEndian.Uint16(ops[1:])) % len(hello)
			n := int(binary.BigEndian.Uint16(ops[3:]))
			ops = ops[5:]
			if ctl&0x40 != 0 {
				if len(frames) > 0 {
					feed(false)
				}
				frames = nil
				feed(true)
				continue
			}
			if ctl&0x80 != 0 && len(frames) > 0 {
				feed(false)
			}
			room := packetRoom - len(frames) - 1 - 4 - 2 // type, offset and length varints
			if room < 0 {
				feed(false)
				room = packetRoom - 7
			}
			n %= min(room, len(hello)-off) + 1
			frames = appendCryptoFrame(frames, off, hello[off:off+n])
			if !pieceErr && n > 0 {
				touches := (off > 0 && have[off-1]) || off+n < len(have) && have[off+n] || slices.Contains(have[off:off+n], true)
				if !touches && len(runs(have)) == maxCryptoPieces {
					pieceErr = true // the sniffer stops at this frame
				} else {
					for i := off; i < off+n; i++ {
						have[i] = true
					}
				}
			}
		}
		if len(frames) > 0 {
			feed(false)
		}
	})
}

// runs returns the runs of true in have.
func runs(have []bool) []byteRange {
	var out []byteRange
	for i := 0; i < len(have); i++ {
		if have[i] {
			j := i
			for j < len(have) && have[j] {
				j++
			}
			out = append(out, byteRange{i, j})
			i = j
		}
	}
	return out
}

// checkCryptoStream fails unless cs holds exactly the pieces of stream
// that have marks, as sorted, disjoint, not adjacent ranges.
func checkCryptoStream(t *testing.T, cs *cryptoStream, have []bool, stream []byte) {
	t.Helper()
	if want := runs(have); !slices.Equal(cs.have, want) {
		t.Fatalf("pieces %v, want %v", cs.have, want)
	}
	for _, r := range cs.have {
		if r.end > len(cs.buf) || !bytes.Equal(cs.buf[r.start:r.end], stream[r.start:r.end]) {
			t.Fatalf("piece %v of a %d-byte buffer does not hold the stream's bytes", r, len(cs.buf))
		}
	}
}
