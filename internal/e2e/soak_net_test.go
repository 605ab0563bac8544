package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	mdns "github.com/miekg/dns"
)

// maxWorkerErrors stops a worker pool after this many failed items: the
// test fails anyway, and the rest would only wait out their deadlines.
const maxWorkerErrors = 20

// workerPool runs do(i) for every i in [0, n) on workers goroutines, each
// on its own thread switched into ns, so the sockets do opens belong to
// ns. It returns how many items failed and the first few errors.
func workerPool(ns *netlab.NS, workers, n int, do func(i int) error) (failed int, errs []error) {
	var next, nfail atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			err := ns.Do(func() error {
				for nfail.Load() < maxWorkerErrors {
					i := int(next.Add(1) - 1)
					if i >= n {
						return nil
					}
					if err := do(i); err != nil {
						nfail.Add(1)
						mu.Lock()
						if len(errs) < 5 {
							errs = append(errs, fmt.Errorf("item %d: %w", i, err))
						}
						mu.Unlock()
					}
				}
				return nil
			})
			if err != nil {
				nfail.Add(1)
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	failed = int(nfail.Load())
	if failed >= maxWorkerErrors {
		errs = append(errs, fmt.Errorf("stopped after %d failures (items not run count as failed)", failed))
		failed += n - int(min(next.Load(), int64(n)))
	}
	return failed, errs
}

// shortFlowReq and shortFlowResp are a short TCP flow's request and
// answer: the client sends the request, the server answers and closes
// first, so neither the client nor gatewayd's upstream side is left in
// TIME_WAIT (the flows would otherwise run out of client ports).
const (
	shortFlowReq  = "GET /soak HTTP/1.0\n"
	shortFlowResp = "HTTP/1.0 200 OK\nContent-Length: 4\n\nsoak"
)

// serveShortFlows answers shortFlowReq with shortFlowResp and closes.
func serveShortFlows(t *testing.T, ns *netlab.NS, addr netip.AddrPort) {
	t.Helper()
	serve(t, ns, addr, func(c *net.TCPConn) {
		req := make([]byte, len(shortFlowReq))
		if _, err := io.ReadFull(c, req); err != nil || string(req) != shortFlowReq {
			return
		}
		_, _ = io.WriteString(c, shortFlowResp)
	})
}

// shortFlow runs one short flow to dst from the calling thread's
// namespace (inside NS.Do): request, answer, the server's close, close.
func shortFlow(dst netip.AddrPort) error {
	c, err := net.DialTimeout("tcp", dst.String(), ioGuard)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioGuard))
	if _, err := io.WriteString(c, shortFlowReq); err != nil {
		return fmt.Errorf("%s: request: %w", dst, err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("%s: answer: %w", dst, err)
	}
	if string(got) != shortFlowResp {
		return fmt.Errorf("%s: answer %q, want %q", dst, got, shortFlowResp)
	}
	return nil
}

// udpOnce sends payload to dst from a new socket bound to src, waits for
// the echo server's answer and returns its length. Run inside NS.Do.
func udpOnce(src, dst netip.AddrPort, payload []byte) (int, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.WriteToUDPAddrPort(payload, dst); err != nil {
		return 0, fmt.Errorf("%s -> %s: %w", src, dst, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(ioGuard))
	buf := make([]byte, 2048)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return 0, fmt.Errorf("%s -> %s: reply: %w", src, dst, err)
	}
	if _, body, ok := strings.Cut(string(buf[:n]), "|"); !ok || body != string(payload) || unmapAP(from) != dst {
		return 0, fmt.Errorf("%s -> %s: reply %q from %s", src, dst, buf[:n], from)
	}
	return n, nil
}

// soakZone is the zone the lab's DNS server answers every name of.
const soakZone = "soak.test."

// soakName is the name of key k; soakAnswer is its address.
func soakName(k int) string { return fmt.Sprintf("n%d.%s", k, soakZone) }

func soakAnswer(k int, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 0x02, 0, 0xff, 14: byte(k >> 8), 15: byte(k)})
	}
	return netip.AddrFrom4([4]byte{198, 19, 100 + byte(k>>8), byte(k)})
}

// soakKey parses the k out of soakName(k).
func soakKey(name string) (int, bool) {
	s, ok := strings.CutSuffix(strings.ToLower(name), "."+soakZone)
	if !ok || !strings.HasPrefix(s, "n") {
		return 0, false
	}
	k, err := strconv.Atoi(s[1:])
	return k, err == nil && k >= 0 && k < 1<<12
}

// serveSoakDNS runs an authoritative DNS server for soakZone on addr:53 in
// ns (A and AAAA of soakName(k) is soakAnswer(k), TTL an hour) and returns
// the count of queries it answered.
func serveSoakDNS(t *testing.T, ns *netlab.NS, addr netip.Addr) *atomic.Int64 {
	t.Helper()
	pc := listenUDP(t, ns, netip.AddrPortFrom(addr, 53))
	var n atomic.Int64
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		n.Add(1)
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			k, ok := soakKey(q.Name)
			hdr := mdns.RR_Header{Name: q.Name, Rrtype: q.Qtype, Class: mdns.ClassINET, Ttl: 3600}
			switch {
			case !ok:
				m.Rcode = mdns.RcodeNameError
			case q.Qtype == mdns.TypeA:
				m.Answer = append(m.Answer, &mdns.A{Hdr: hdr, A: soakAnswer(k, false).AsSlice()})
			case q.Qtype == mdns.TypeAAAA:
				m.Answer = append(m.Answer, &mdns.AAAA{Hdr: hdr, AAAA: soakAnswer(k, true).AsSlice()})
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return &n
}

// soakQuery is the wire form of the query for key k (A, or AAAA if v6)
// with id; no EDNS, so it is cached under one key per name and type.
func soakQuery(k int, v6 bool, id uint16) []byte {
	q := new(mdns.Msg)
	qt := mdns.TypeA
	if v6 {
		qt = mdns.TypeAAAA
	}
	q.SetQuestion(soakName(k), qt)
	q.Id = id
	wire, err := q.Pack()
	if err != nil {
		panic(err)
	}
	return wire
}

// checkSoakAnswer checks an answer to soakQuery(k, v6, id).
func checkSoakAnswer(b []byte, k int, v6 bool, id uint16) error {
	var r mdns.Msg
	if err := r.Unpack(b); err != nil {
		return fmt.Errorf("answer for key %d: %w", k, err)
	}
	want := soakAnswer(k, v6)
	if r.Id != id || r.Rcode != mdns.RcodeSuccess || len(r.Answer) != 1 {
		return fmt.Errorf("answer for key %d: id %d rcode %d, %d records", k, r.Id, r.Rcode, len(r.Answer))
	}
	var got netip.Addr
	switch rr := r.Answer[0].(type) {
	case *mdns.A:
		got, _ = netip.AddrFromSlice(rr.A)
		got = got.Unmap()
	case *mdns.AAAA:
		got, _ = netip.AddrFromSlice(rr.AAAA)
	}
	if got != want {
		return fmt.Errorf("answer for key %d: %v, want %s", k, r.Answer[0], want)
	}
	return nil
}

// Kinds of garbage sent to port 53. Every one is undecodable as a DNS
// message (garbage checks that), so gatewayd counts it as malformed.
const (
	garbageShort    = iota // 0-11 bytes: no header; dropped without a reply
	garbageRandom          // a query header and random bytes: FORMERR
	garbageLoop            // a question name that is a compression pointer to itself: FORMERR
	garbageQDCount         // QDCOUNT 65535 and no questions: FORMERR
	garbageResponse        // QR=1 and random bytes: dropped without a reply
	garbageKinds
)

// garbage returns a datagram of kind for port 53, built from r, and
// whether gatewayd answers it (a FORMERR header with its ID).
func garbage(r *rand.Rand, kind int) (b []byte, reply bool) {
	for {
		switch kind {
		case garbageShort:
			b = randBytes(r, r.IntN(12))
		case garbageRandom, garbageResponse:
			b = randBytes(r, 12+r.IntN(500))
			flags := binary.BigEndian.Uint16(b[2:]) &^ (1 << 15)
			if kind == garbageResponse {
				flags |= 1 << 15
			}
			binary.BigEndian.PutUint16(b[2:], flags)
			// Give random bytes a question to trip on more often than
			// on the header counts.
			binary.BigEndian.PutUint16(b[4:], 1+uint16(r.IntN(4)))
		case garbageLoop:
			b = binary.BigEndian.AppendUint16(nil, uint16(r.Uint32()))
			b = append(b, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0) // a query, QDCOUNT 1
			b = append(b, 0xc0, 12, 0, 1, 0, 1)         // name: pointer to offset 12, itself
		case garbageQDCount:
			b = binary.BigEndian.AppendUint16(nil, uint16(r.Uint32()))
			b = append(b, 1, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0)
			b = append(b, randBytes(r, r.IntN(64))...)
		}
		var m mdns.Msg
		if m.Unpack(b) != nil {
			return b, len(b) >= 12 && b[2]&0x80 == 0
		}
		// Random bytes that decode: draw again.
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// dnsClient is one worker's UDP socket for queries to port 53 (any
// destination); it matches answers by source and ID.
type dnsClient struct {
	c   *net.UDPConn
	buf []byte
}

// newDNSClient opens the socket on the calling thread's namespace.
func newDNSClient(src netip.Addr) (*dnsClient, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		return nil, err
	}
	return &dnsClient{c: c, buf: make([]byte, 4096)}, nil
}

// exchange sends b to dst and, if want, returns the answer from dst with
// b's ID, skipping anything else that arrives (late answers).
func (d *dnsClient) exchange(b []byte, dst netip.AddrPort, want bool, timeout time.Duration) ([]byte, error) {
	if _, err := d.c.WriteToUDPAddrPort(b, dst); err != nil {
		return nil, fmt.Errorf("send to %s: %w", dst, err)
	}
	if !want {
		return nil, nil
	}
	_ = d.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		n, from, err := d.c.ReadFromUDPAddrPort(d.buf)
		if err != nil {
			return nil, fmt.Errorf("answer from %s: %w", dst, err)
		}
		if unmapAP(from) == dst && n >= 2 && binary.BigEndian.Uint16(d.buf) == binary.BigEndian.Uint16(b) {
			return d.buf[:n], nil
		}
	}
}

// checkFormErr checks gatewayd's answer to an undecodable query: a bare
// header with the query's ID, QR and FORMERR.
func checkFormErr(got, query []byte) error {
	if len(got) != 12 || got[0] != query[0] || got[1] != query[1] || got[2]&0x80 == 0 || got[3]&0xf != mdns.RcodeFormatError {
		return fmt.Errorf("answer to garbage % x...: % x, want a FORMERR header", query[:min(len(query), 12)], got)
	}
	return nil
}

// rssBytes is pid's resident set size.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, errors.New("statm: short")
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}

// logLinesSince returns the lines of log after byte offset from.
func logLinesSince(log string, from int) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(log[from:]))
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

const mib = 1 << 20
