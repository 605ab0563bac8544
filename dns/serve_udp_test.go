package dns

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// NewServer takes a nil logger, as tcp.New and udp.New do: its output is
// discarded. (An answer that cannot be sent is logged.)
func TestNewServerNilLogger(t *testing.T) {
	s := NewServer(ServerConfig{}, nil, nil)
	defer s.cancel()
	if s.log == nil {
		t.Fatal("the server kept a nil logger")
	}
	s.replies.closeAll() // nothing is opened, the answer fails and is logged
	s.sendUDP([]byte("x"), netip.MustParseAddrPort("198.18.0.53:53"), netip.MustParseAddrPort("198.18.1.2:40000"))
	if got := s.dropped.Load(); got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
}

// TestGarbageAnswersOpenNoReplySocket: the FORMERR answers to undecodable
// datagrams leave only from a reply socket already open. A flood of
// random bytes at a new address each datagram opened a transparent
// socket per datagram, and the read loop's resolving slots filled with
// them, so real queries were dropped (TestHostileLANFlood: a query
// unanswered in 10 tries, 99 057 datagrams dropped against 47 994
// handled).
func TestGarbageAnswersOpenNoReplySocket(t *testing.T) {
	s := &Server{replies: newReplySockets(0), log: slog.New(slog.DiscardHandler)}
	h := newHitBatch(s)
	formErr := []byte{0xab, 0xcd, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	client := netip.MustParseAddrPort("198.18.1.2:40000")
	for i := range udpBatch {
		h.queue(formErr, client, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}), 53))
	}
	h.flush()
	if n := len(s.replies.m); n != 0 {
		t.Errorf("%d reply sockets opened for answers to garbage", n)
	}
	if got := s.dropped.Load(); got != udpBatch {
		t.Errorf("dropped = %d, want %d (the unanswered garbage)", got, udpBatch)
	}

	// From an open socket, the answer goes out.
	if os.Getuid() != 0 {
		t.Skip("reply sockets are transparent: the rest needs root (CAP_NET_RAW)")
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src := netip.MustParseAddrPort("127.0.0.1:0")
	if _, err := s.replies.socket(src); err != nil {
		t.Fatal(err)
	}
	defer s.replies.closeAll()
	h.queue(formErr, c.LocalAddr().(*net.UDPAddr).AddrPort(), src)
	h.flush()
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], formErr) {
		t.Errorf("answer from an open reply socket: % x, %v; want % x", buf[:n], err, formErr)
	}
}
