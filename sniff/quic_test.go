package sniff

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"
)

// rfcDCID is the Destination Connection ID of RFC 9001 §A and RFC 9369 §A.
var rfcDCID = mustHex("8394c8f03e515708")

func TestInitialKeysRFC9001(t *testing.T) {
	// RFC 9001 §A.1.
	v, _ := lookupVersion(quicV1)
	initial, err := hkdf.Extract(sha256.New, rfcDCID, []byte(v.salt))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := expandLabel(initial, clientInitialLabel, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what   string
		secret []byte
		label  string
		n      int
		want   string
	}{
		{"client_initial_secret", initial, clientInitialLabel, sha256.Size, "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"},
		{"key", secret, v.keyLabel, aesKeyLen, "1f369613dd76d5467730efcbe3b1a22d"},
		{"iv", secret, v.ivLabel, aeadNonceLen, "fa044b2f42a3fd3b46fb255c"},
		{"hp", secret, v.hpLabel, aesKeyLen, "9f50449e04a0e810283a1e9933adedd2"},
	} {
		got, err := expandLabel(tc.secret, tc.label, tc.n)
		if err != nil || hex.EncodeToString(got) != tc.want {
			t.Errorf("%s = %x, %v; want %s", tc.what, got, err, tc.want)
		}
	}
}

func TestQUICServerNameRFCVectors(t *testing.T) {
	for _, file := range []string{"rfc9001-a2-client-initial.hex", "rfc9369-a2-client-initial.hex"} {
		t.Run(file, func(t *testing.T) {
			d := readHexFile(t, file)
			orig := bytes.Clone(d)
			wantName(t, "QUICServerName", must(QUICServerName(d)), nil, "example.com")
			wantName(t, "Sniff(udp)", must(Sniff(ProtoUDP, d)), nil, "example.com")
			if !bytes.Equal(d, orig) {
				t.Fatal("QUICServerName modified its input")
			}
			// The reassembled CRYPTO stream is the RFC's ClientHello.
			var s QUICSniffer
			if err := s.readDatagram(d); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(s.crypto.prefix(), rfc9001Hello()) {
				t.Fatalf("CRYPTO stream %x\nwant %x", s.crypto.prefix(), rfc9001Hello())
			}
			// Every truncation is refused (a datagram under 1200 bytes or a
			// cut packet), never a panic.
			for i := range len(d) {
				got, err := QUICServerName(d[:i])
				expect(t, "QUICServerName(truncated)", got, err, "", errMalformed)
			}
			// Any flipped ciphertext bit fails authentication.
			bad := bytes.Clone(d)
			bad[600] ^= 0x10
			got, err := QUICServerName(bad)
			expect(t, "QUICServerName(corrupted)", got, err, "", errOpen)
		})
	}
}

// splitFrames cuts hello into pieces at random points and at cuts, shuffles
// them, and returns them as CRYPTO frames interleaved with PING and
// PADDING frames, the way Chrome's "chaos protection" does.
func splitFrames(rng *rand.Rand, hello []byte, cuts ...int) [][]byte {
	for range 4 + rng.IntN(6) {
		cuts = append(cuts, 1+rng.IntN(len(hello)-1))
	}
	cuts = append(cuts, 0, len(hello))
	slicesSort(cuts)
	var frames [][]byte
	for i := 1; i < len(cuts); i++ {
		if cuts[i] > cuts[i-1] {
			frames = append(frames, cryptoFrame(cuts[i-1], hello[cuts[i-1]:cuts[i]]))
		}
	}
	rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
	var out [][]byte
	for _, f := range frames {
		out = append(out, f)
		switch rng.IntN(3) {
		case 0:
			out = append(out, []byte{framePing})
		case 1:
			out = append(out, make([]byte, 1+rng.IntN(20)))
		}
	}
	return out
}

// pack distributes frames, in order, over packets whose frames take at
// most room bytes each.
func pack(frames [][]byte, room int) [][]byte {
	var packets [][]byte
	var cur []byte
	for _, f := range frames {
		if len(cur) > 0 && len(cur)+len(f) > room {
			packets = append(packets, cur)
			cur = nil
		}
		cur = append(cur, f...)
	}
	return append(packets, cur)
}

// packetRoom is how many frame bytes fit a 1200-byte Initial with 8-byte
// connection IDs and no token.
const packetRoom = minInitialDatagram - 60

func TestQUICSnifferShuffledHelloAcrossDatagrams(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint32
		curves  []tls.CurveID
	}{
		{"v1 x25519mlkem768", quicV1, []tls.CurveID{tls.X25519MLKEM768, tls.X25519}},
		{"v2 x25519mlkem768", quicV2, []tls.CurveID{tls.X25519MLKEM768, tls.X25519}},
		{"v1 secp384r1mlkem1024", quicV1, []tls.CurveID{tls.SecP384r1MLKEM1024}},
		{"v1 x25519", quicV1, []tls.CurveID{tls.X25519}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hello := quicHello(t, &tls.Config{ServerName: "Video.Example.com", CurvePreferences: tc.curves})
			sni := bytes.Index(hello, []byte("Video.Example.com"))
			needMore := 0
			for seed := range uint64(20) {
				rng := rand.New(rand.NewPCG(seed, 1))
				// One cut always falls inside the name, as Chrome does.
				frames := splitFrames(rng, hello, sni+3)
				dcid := make([]byte, 8+rng.IntN(13))
				for i := range dcid {
					dcid[i] = byte(rng.Uint32())
				}
				var grams [][]byte
				for i, payload := range pack(frames, packetRoom) {
					grams = append(grams, datagram(t, testPacket{version: tc.version, dcid: dcid, pn: uint64(i), pnLen: 1 + i%4, frames: payload}))
				}
				if len(hello) > packetRoom && len(grams) < 2 {
					t.Fatalf("a %d-byte hello fit one packet", len(hello))
				}
				// In order, and reversed: the result comes with the last
				// datagram that completes the name, never before the name.
				for _, order := range []string{"in order", "reversed"} {
					var s QUICSniffer
					for i := range grams {
						g := grams[i]
						if order == "reversed" {
							g = grams[len(grams)-1-i]
						}
						got, err := s.Feed(g)
						if err == ErrNeedMore && i < len(grams)-1 {
							needMore++
							continue
						}
						wantName(t, order+": Feed", got, err, "video.example.com")
						break
					}
				}
			}
			if len(hello) > packetRoom && needMore == 0 {
				t.Fatal("no datagram ever left the name incomplete: the hellos were not split")
			}
			t.Logf("%d-byte hello; %d of 40 runs needed a second datagram", len(hello), needMore)
		})
	}
}

func TestQUICSnifferNeedsTheNameBytes(t *testing.T) {
	hello := quicHello(t, &tls.Config{ServerName: "cut.example"})
	sni := bytes.Index(hello, []byte("cut.example"))
	dcid := mustHex("0011223344556677")
	first := datagram(t, testPacket{dcid: dcid, frames: cryptoFrame(0, hello[:sni+4])})
	second := datagram(t, testPacket{dcid: dcid, pn: 1, frames: cryptoFrame(sni+4, hello[sni+4:])})
	var s QUICSniffer
	got, err := s.Feed(first)
	wantErr(t, "Feed(first part)", got, err, ErrNeedMore)
	got, err = QUICServerName(first)
	wantErr(t, "QUICServerName(first part)", got, err, ErrNeedMore)
	wantName(t, "Feed(second part)", must(s.Feed(second)), nil, "cut.example")
	// The result is final.
	wantName(t, "Feed(again)", must(s.Feed([]byte("junk"))), nil, "cut.example")
}

func TestQUICServerNameCoalescedPackets(t *testing.T) {
	hello := quicHello(t, &tls.Config{ServerName: "coalesced.example"})
	dcid := mustHex("0102030405060708")
	half := len(hello) / 2
	ack := []byte{frameAckECN, 5, 0x40, 0x10, 1, 0, 2, 1, 7, 0, 0, 1} // 2 ranges in total, ECN counts
	zeroRTT := byte(1)
	d := datagram(t,
		testPacket{dcid: dcid, pn: 7, frames: append(ack, cryptoFrame(half, hello[half:])...)},
		testPacket{dcid: dcid, pn: 8, frames: cryptoFrame(0, hello[:half])},
		// A 0-RTT packet (sealed with Initial keys here: it is skipped
		// unopened) and a packet of another connection are skipped.
		testPacket{dcid: dcid, pn: 9, typ: &zeroRTT, frames: []byte{framePing}},
		testPacket{dcid: mustHex("ffffffffffffffff"), pn: 0, frames: []byte{frameConnectionClose, 0, 0, 0}},
	)
	wantName(t, "QUICServerName(coalesced)", must(QUICServerName(d)), nil, "coalesced.example")
}

func TestQUICServerNameTrailingZeroPadding(t *testing.T) {
	// Some clients pad the datagram after the packet instead of inside it.
	hello := quicHello(t, &tls.Config{ServerName: "pad.example", CurvePreferences: []tls.CurveID{tls.X25519}})
	p := sealT(t, testPacket{dcid: mustHex("0102030405060708"), frames: cryptoFrame(0, hello)}, 0)
	d := append(p, make([]byte, minInitialDatagram-len(p))...)
	wantName(t, "QUICServerName", must(QUICServerName(d)), nil, "pad.example")
}

func TestQUICSnifferConnectionIDChanges(t *testing.T) {
	hello := quicHello(t, &tls.Config{ServerName: "cid.example"})
	orig, server := mustHex("1111111111111111"), mustHex("22222222")
	sni := bytes.Index(hello, []byte("cid.example"))
	first := datagram(t, testPacket{dcid: orig, frames: cryptoFrame(0, hello[:sni])})

	t.Run("server connection id", func(t *testing.T) {
		// After the server's Initial the client addresses the server's
		// connection ID; its Initial keys stay those of the first DCID.
		second := datagram(t, testPacket{dcid: server, keyDCID: orig, pn: 1, frames: cryptoFrame(sni, hello[sni:])})
		var s QUICSniffer
		if _, err := s.Feed(first); err != ErrNeedMore {
			t.Fatalf("Feed(first) = %v", err)
		}
		wantName(t, "Feed(second)", must(s.Feed(second)), nil, "cid.example")
	})
	t.Run("retry", func(t *testing.T) {
		// After a Retry the client starts over with the DCID the Retry
		// gave, keys derived from it and the token.
		retried := func(pn uint64, frames []byte) []byte {
			return datagram(t, testPacket{dcid: server, token: []byte("retry-token"), pn: pn, frames: frames})
		}
		var s QUICSniffer
		if _, err := s.Feed(first); err != ErrNeedMore {
			t.Fatalf("Feed(first) = %v", err)
		}
		if _, err := s.Feed(retried(1, cryptoFrame(0, hello[:sni]))); err != ErrNeedMore {
			t.Fatalf("Feed(retried first) = %v", err)
		}
		wantName(t, "Feed(retried second)", must(s.Feed(retried(2, cryptoFrame(sni, hello[sni:])))), nil, "cid.example")
	})
}

func TestQUICSnifferSkipsUnopenableLaterDatagrams(t *testing.T) {
	hello := quicHello(t, &tls.Config{ServerName: "skip.example"})
	dcid := mustHex("0102030405060708")
	half := bytes.Index(hello, []byte("skip.example"))
	var s QUICSniffer
	if _, err := s.Feed(datagram(t, testPacket{dcid: dcid, frames: cryptoFrame(0, hello[:half])})); err != ErrNeedMore {
		t.Fatalf("Feed(first) = %v", err)
	}
	corrupt := datagram(t, testPacket{dcid: dcid, pn: 1, frames: cryptoFrame(half, hello[half:])})
	corrupt[len(corrupt)-1] ^= 1
	for _, d := range [][]byte{corrupt, {0x40, 1, 2, 3}, make([]byte, minInitialDatagram)} {
		if got, err := s.Feed(d); err != ErrNeedMore {
			t.Fatalf("Feed(unopenable) = %q, %v; want ErrNeedMore", got, err)
		}
	}
	wantName(t, "Feed(rest)", must(s.Feed(datagram(t, testPacket{dcid: dcid, pn: 2, frames: cryptoFrame(half, hello[half:])}))), nil, "skip.example")
}

func TestQUICSnifferGivesUp(t *testing.T) {
	dcid := mustHex("0102030405060708")
	var s QUICSniffer
	for i := range maxSniffDatagrams {
		got, err := s.Feed(datagram(t, testPacket{dcid: dcid, pn: uint64(i), frames: []byte{framePing}}))
		if i < maxSniffDatagrams-1 {
			wantErr(t, "Feed(ping)", got, err, ErrNeedMore)
		} else {
			wantErr(t, "Feed(last ping)", got, err, errGaveUp)
		}
	}
}

func TestQUICServerNameMalformed(t *testing.T) {
	hello := quicHello(t, &tls.Config{ServerName: "bad.example"})
	dcid := mustHex("0102030405060708")
	seal := func(p testPacket) []byte {
		p.dcid = dcid
		return datagram(t, p)
	}
	withVersion := func(v uint32) []byte {
		d := seal(testPacket{frames: cryptoFrame(0, hello)})
		d[1], d[2], d[3], d[4] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		return d
	}
	handshake := byte(2)
	small := sealT(t, testPacket{dcid: dcid, frames: cryptoFrame(0, hello[:100])}, 0)
	for _, tc := range []struct {
		name string
		in   []byte
		err  error
	}{
		{"empty", nil, errNoInitial},
		{"short header", append([]byte{0x40}, make([]byte, 1300)...), errNoInitial},
		{"version negotiation", withVersion(0), errMalformed},
		{"draft-29", withVersion(0xff00001d), errMalformed},
		{"v1 packet claiming v2", withVersion(quicV2), errMalformed},
		{"handshake packet first", seal(testPacket{typ: &handshake, frames: []byte{framePing}}), errNoInitial},
		{"small datagram", small, errMalformed},
		{"connection close", seal(testPacket{frames: []byte{frameConnectionClose, 0, 0, 0}}), errConnectionClose},
		{"stream frame", seal(testPacket{frames: []byte{0x08, 0, 1, 'x'}}), errMalformed},
		{"two-byte frame type", seal(testPacket{frames: []byte{0x40, 0x06}}), errMalformed},
		{"truncated crypto frame", seal(testPacket{frames: []byte{frameCrypto, 0, 0x7f, 0xff}}), errMalformed},
		{"truncated ack", seal(testPacket{frames: []byte{frameAck, 0, 0, 0x80, 0, 0xff, 0xff, 0}}), errMalformed},
		{"crypto beyond the bound", seal(testPacket{frames: cryptoFrame(maxCryptoStream, []byte{1})}), errMalformed},
		{"not a client hello", seal(testPacket{frames: cryptoFrame(0, append([]byte{2}, hello[1:]...))}), errNotClientHello},
		{"hello without sni", seal(testPacket{frames: cryptoFrame(0, quicHello(t, &tls.Config{InsecureSkipVerify: true}))}), ErrNotFound},
		{"connection id too long", append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 1300)...), errMalformed},
		{"token overruns", append([]byte{0xc0, 0, 0, 0, 1, 0, 0, 0x7f, 0xff}, make([]byte, 1300)...), errMalformed},
	} {
		got, err := QUICServerName(tc.in)
		expect(t, "QUICServerName("+tc.name+")", got, err, "", tc.err)
	}
}

func TestQUICSnifferTooManyPieces(t *testing.T) {
	// Every other byte of the stream, as separate frames: more disjoint
	// pieces than the reassembly keeps.
	var frames []byte
	for i := range maxCryptoPieces + 1 {
		frames = append(frames, cryptoFrame(2*i+1, []byte{1})...)
	}
	got, err := QUICServerName(datagram(t, testPacket{dcid: mustHex("0102030405060708"), frames: frames}))
	expect(t, "QUICServerName(scattered)", got, err, "", errMalformed)
}

func TestCryptoStreamReassembly(t *testing.T) {
	var s cryptoStream
	stream := []byte("0123456789abcdefghij")
	for _, r := range []byteRange{{10, 15}, {2, 4}, {15, 20}, {3, 9}, {0, 1}, {12, 13}} {
		if err := s.add(uint64(r.start), stream[r.start:r.end]); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(s.prefix()); got != "0" {
		t.Fatalf("prefix with a hole at 1 = %q", got)
	}
	if len(s.have) != 3 {
		t.Fatalf("pieces %v, want [0,1) [2,9) [10,20)", s.have)
	}
	for _, r := range []byteRange{{1, 2}, {9, 10}} {
		if err := s.add(uint64(r.start), stream[r.start:r.end]); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(s.prefix()); got != string(stream) || len(s.have) != 1 {
		t.Fatalf("prefix = %q, pieces %v; want the whole stream in one piece", got, s.have)
	}
}

func TestDecodePacketNumber(t *testing.T) {
	// RFC 9000 §A.3's example, plus a first packet.
	for _, tc := range []struct {
		largest   int64
		truncated uint64
		pnLen     int
		want      int64
	}{
		{0xa82f30ea, 0x9b32, 2, 0xa82f9b32},
		{-1, 0, 1, 0},
		{-1, 2, 4, 2},
		{0xff, 0x01, 1, 0x101},
	} {
		if got := decodePacketNumber(tc.largest, tc.truncated, tc.pnLen); got != tc.want {
			t.Errorf("decodePacketNumber(%#x, %#x, %d) = %#x, want %#x", tc.largest, tc.truncated, tc.pnLen, got, tc.want)
		}
	}
}

// SealClientInitials builds what the relay's tests send: a ClientHello in
// several real Initials, which a QUICSniffer reads the name from only once
// the datagram completing the server_name extension has arrived.
func TestSealClientInitials(t *testing.T) {
	const server = "split.example.test"
	hello, err := QUICClientHello(server)
	if err != nil {
		t.Fatal(err)
	}
	mid := bytes.Index(hello, []byte(server)) + len(server)/2 // the name spans the first two datagrams
	grams, err := SealClientInitials(mustHex("8394c8f03e515708"), hello, mid, mid+len(server))
	if err != nil {
		t.Fatal(err)
	}
	if len(grams) != 3 {
		t.Fatalf("%d datagrams, want 3", len(grams))
	}
	var s QUICSniffer
	for i, g := range grams {
		if len(g) < minInitialDatagram {
			t.Errorf("datagram %d: %d bytes, want at least %d", i, len(g), minInitialDatagram)
		}
		name, err := s.Feed(g)
		if i == 0 {
			wantErr(t, "first datagram, half the name", name, err, ErrNeedMore)
		} else {
			wantName(t, fmt.Sprintf("datagram %d", i), name, err, server)
		}
	}
	for _, bad := range []struct {
		dcid, hello []byte
		cuts        []int
	}{
		{[]byte{1, 2, 3}, hello, nil},
		{mustHex("8394c8f03e515708"), nil, nil},
		{mustHex("8394c8f03e515708"), hello, []int{0}},
		{mustHex("8394c8f03e515708"), hello, []int{10, 10}},
		{mustHex("8394c8f03e515708"), hello, []int{len(hello)}},
	} {
		if _, err := SealClientInitials(bad.dcid, bad.hello, bad.cuts...); err == nil {
			t.Errorf("SealClientInitials(%x, %d bytes, %v): no error", bad.dcid, len(bad.hello), bad.cuts)
		}
	}
}
