package tcp

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"
)

const (
	bigTransfer = 32 << 20 // bytes each way in the integrity test
	testIdle    = 200 * time.Millisecond
	streamIdle  = 500 * time.Millisecond // idle timeout of the one-way stream test
	streamFor   = 3 * streamIdle         // how long the one-way stream lasts
	streamEvery = 10 * time.Millisecond  // gap between its writes
	streamChunk = 512                    // bytes per write
	seedUp      = 1
	seedDown    = 2
)

// relayed is a relay between two loopback connections:
// client <-> [relay] <-> server.
type relayed struct {
	client, server *net.TCPConn
	done           chan outcome
}

func startRelay(t testing.TB, idle time.Duration) relayed {
	t.Helper()
	client, relayClient := tcpPair(t)
	relayUp, server := tcpPair(t)
	r := relayed{client: client, server: server, done: make(chan outcome, 1)}
	rl := newRelayer(0, nil)
	t.Cleanup(rl.close)
	rl.start(relayClient, relayUp, idle, func(res outcome) { r.done <- res })
	return r
}

func (r relayed) wait(t testing.TB) outcome {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	case <-time.After(failAfter):
		t.Fatal("relay did not end")
		return outcome{}
	}
}

type digest struct {
	n   int64
	sum [sha256.Size]byte
	err error
}

// sendRandom writes n pseudo-random bytes then half-closes c.
func sendRandom(c *net.TCPConn, seed uint64, n int64) digest {
	h := sha256.New()
	var seedBytes [32]byte
	seedBytes[0] = byte(seed)
	w, err := io.CopyN(io.MultiWriter(c, h), rand.NewChaCha8(seedBytes), n)
	if err == nil {
		err = c.CloseWrite()
	}
	return digest{n: w, sum: [sha256.Size]byte(h.Sum(nil)), err: err}
}

// receiveAll reads c to EOF.
func receiveAll(c *net.TCPConn) digest {
	h := sha256.New()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	n, err := io.Copy(h, c)
	return digest{n: n, sum: [sha256.Size]byte(h.Sum(nil)), err: err}
}

func TestRelayLargeTransferBothWays(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, 0)

	results := make(chan digest, 4)
	go func() { results <- sendRandom(r.client, seedUp, bigTransfer) }()
	go func() { results <- sendRandom(r.server, seedDown, bigTransfer) }()
	upRecv := make(chan digest, 1)
	downRecv := make(chan digest, 1)
	go func() { upRecv <- receiveAll(r.server) }()
	go func() { downRecv <- receiveAll(r.client) }()
	for range 2 {
		if d := <-results; d.err != nil {
			t.Fatalf("sending: %v", d.err)
		}
	}
	want := func(seed uint64) [sha256.Size]byte {
		var seedBytes [32]byte
		seedBytes[0] = byte(seed)
		h := sha256.New()
		_, _ = io.CopyN(h, rand.NewChaCha8(seedBytes), bigTransfer)
		return [sha256.Size]byte(h.Sum(nil))
	}
	for name, got := range map[string]digest{"up": <-upRecv, "down": <-downRecv} {
		seed := uint64(seedUp)
		if name == "down" {
			seed = seedDown
		}
		if got.err != nil || got.n != bigTransfer || got.sum != want(seed) {
			t.Errorf("%s: received %d bytes (err %v), sha256 match %v; want %d intact bytes",
				name, got.n, got.err, got.sum == want(seed), bigTransfer)
		}
	}
	res := r.wait(t)
	if res.up != bigTransfer || res.down != bigTransfer || res.reason != reasonEOF {
		t.Errorf("outcome = %+v, want %d bytes each way, reason eof", res, bigTransfer)
	}
}

func TestRelayHalfClose(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, 0)
	request, reply := []byte("request"), []byte("reply after EOF")

	if _, err := r.client.Write(request); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	if err := r.client.CloseWrite(); err != nil {
		t.Fatalf("half-closing client: %v", err)
	}
	got := receiveAll(r.server) // reads up to the client's FIN
	if got.err != nil || got.sum != sha256.Sum256(request) {
		t.Fatalf("server got %d bytes (err %v), want %q then EOF", got.n, got.err, request)
	}
	if _, err := r.server.Write(reply); err != nil {
		t.Fatalf("writing reply after EOF: %v", err)
	}
	_ = r.server.Close()

	_ = r.client.SetReadDeadline(time.Now().Add(failAfter))
	body, err := io.ReadAll(r.client)
	if err != nil || !bytes.Equal(body, reply) {
		t.Fatalf("client got %q (err %v), want %q then EOF", body, err, reply)
	}
	res := r.wait(t)
	if res.reason != reasonEOF || res.up != int64(len(request)) || res.down != int64(len(reply)) {
		t.Errorf("outcome = %+v", res)
	}
}

func TestRelayIdleTimeoutClosesIdleFlow(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testIdle)
	res := r.wait(t)
	if res.reason != reasonIdle {
		t.Fatalf("reason = %q (err %v), want idle", res.reason, res.err)
	}
	// Both peers see the flow end.
	for name, c := range map[string]*net.TCPConn{"client": r.client, "server": r.server} {
		_ = c.SetReadDeadline(time.Now().Add(failAfter))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("%s read after idle close: %v, want EOF or reset", name, err)
		}
	}
}

func TestRelayIdleTimeoutSparesOneWayFlow(t *testing.T) {
	for _, dir := range []string{"up", "down"} {
		t.Run(dir, func(t *testing.T) {
			checkGoroutines(t)
			r := startRelay(t, streamIdle)
			from, to := r.client, r.server
			if dir == "down" {
				from, to = to, from
			}
			// Stream one way for several idle timeouts while the other way
			// stays silent; then, with the stream still going, the silent
			// direction must still work, and the receiver must get
			// everything. (Outcomes only: a stream paused by a busy machine
			// for less than the idle timeout changes nothing.)
			received := make(chan digest, 1)
			sent := make(chan int64, 1)
			go func() {
				_ = to.SetReadDeadline(time.Now().Add(failAfter))
				n, err := io.CopyN(io.Discard, to, <-sent)
				received <- digest{n: n, err: err}
			}()
			stop := make(chan struct{})
			streamed := make(chan error, 1)
			go func() {
				var total int64
				chunk := make([]byte, streamChunk)
				defer func() { sent <- total }()
				for {
					n, err := from.Write(chunk)
					total += int64(n)
					if err != nil {
						streamed <- err
						return
					}
					select {
					case <-stop:
						streamed <- nil
						return
					case <-time.After(streamEvery):
					}
				}
			}()
			time.Sleep(streamFor) // several idle timeouts of one-way traffic
			expectTransfer(t, to, from, "still open")
			close(stop)
			if err := <-streamed; err != nil {
				t.Fatalf("streaming: %v; relay: %+v", err, r.wait(t))
			}
			if d := <-received; d.err != nil {
				t.Fatalf("receiving the stream: %v after %d bytes; relay: %+v", d.err, d.n, r.wait(t))
			}
			_ = r.client.CloseWrite()
			_ = r.server.CloseWrite()
			if res := r.wait(t); res.reason != reasonEOF {
				t.Errorf("reason = %q (err %v), want eof", res.reason, res.err)
			}
		})
	}
}

func TestRelayUpstreamResetResetsClient(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, 0)
	expectTransfer(t, r.client, r.server, "hello")
	reset(r.server)
	expectReset(t, r.client)
	if res := r.wait(t); res.reason != reasonReset || res.err == nil {
		t.Errorf("outcome = %+v, want reason reset with an error", res)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func BenchmarkRelay(b *testing.B) {
	const chunk = 1 << 20
	r := startRelay(b, 0)
	buf := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ResetTimer()
	drained := make(chan error, 1)
	go func() { drained <- drain(r.server, int64(b.N)*chunk, chunk) }()
	for range b.N {
		if _, err := r.client.Write(buf); err != nil {
			b.Fatalf("writing: %v", err)
		}
	}
	if err := <-drained; err != nil {
		b.Fatalf("reading: %v", err)
	}
	b.StopTimer()
	_ = r.client.CloseWrite()
	_ = r.server.CloseWrite()
	r.wait(b)
}

// drain reads n bytes from c with a large buffer (io.Discard's own buffer is
// small enough to dominate the benchmark).
func drain(c *net.TCPConn, n int64, bufSize int) error {
	buf := make([]byte, bufSize)
	for n > 0 {
		m, err := c.Read(buf[:min(int64(len(buf)), n)])
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// A relay without pipes copies through its fallback buffer, intact.
func TestRelayWithoutPipesCopiesThroughBuffer(t *testing.T) {
	checkGoroutines(t)
	client, relayClient := tcpPair(t)
	relayUp, server := tcpPair(t)
	rl := newRelayer(0, nil)
	rl.pipes.max = 0 // every get finds the bound reached
	t.Cleanup(rl.close)
	done := make(chan outcome, 1)
	rl.start(relayClient, relayUp, 0, func(res outcome) { done <- res })

	const n = 4 << 20
	sent := make(chan digest, 1)
	go func() { sent <- sendRandom(client, seedUp, n) }()
	got := receiveAll(server)
	if d := <-sent; d.err != nil || got.err != nil || got.n != n || got.sum != d.sum {
		t.Fatalf("sent %d (err %v), received %d (err %v), intact %v", d.n, d.err, got.n, got.err, got.sum == d.sum)
	}
	_ = server.CloseWrite()
	select {
	case res := <-done:
		if res.up != n || res.reason != reasonEOF {
			t.Errorf("outcome = %+v, want %d bytes up, eof", res, n)
		}
	case <-time.After(failAfter):
		t.Fatal("relay did not end")
	}
	if made := rl.pipes.made; made != 0 {
		t.Errorf("%d pipes made with a bound of 0", made)
	}
}

// Idle flows hold no goroutine and no pipe once their directions parked:
// the cost of an idle flow is its two sockets.
func TestRelayIdleFlowsHoldNoGoroutineNorPipe(t *testing.T) {
	checkGoroutines(t)
	const flows = 100
	rl := newRelayer(0, nil)
	rl.linger = 20 * time.Millisecond
	t.Cleanup(rl.close)
	before := runtime.NumGoroutine()
	type pair struct{ client, server *net.TCPConn }
	pairs := make([]pair, flows)
	done := make(chan outcome, flows)
	for i := range pairs {
		client, relayClient := tcpPair(t)
		relayUp, server := tcpPair(t)
		rl.start(relayClient, relayUp, 0, func(res outcome) { done <- res })
		pairs[i] = pair{client, server}
		expectTransfer(t, client, server, "request")
		expectTransfer(t, server, client, "response")
	}
	waitFor(t, "every direction parked and every pipe back", func() bool {
		lent, _ := rl.pipes.counts()
		return lent == 0 && runtime.NumGoroutine() <= before+1 // +1: the poller
	})
	// Parked flows wake up and still work both ways, served by the poller
	// alone: a goroutine started for them would linger now.
	rl.linger = time.Hour
	for _, p := range pairs {
		expectTransfer(t, p.client, p.server, "again")
		expectTransfer(t, p.server, p.client, "and back")
	}
	if n := runtime.NumGoroutine(); n > before+1 {
		t.Errorf("%d goroutines after small messages woke every parked flow, want %d (the poller)", n, before+1)
	}
	for _, p := range pairs { // and they end cleanly
		_ = p.client.CloseWrite()
		_ = p.server.CloseWrite()
	}
	for range flows {
		select {
		case res := <-done:
			if res.reason != reasonEOF || res.up != int64(len("request")+len("again")) {
				t.Errorf("outcome = %+v", res)
			}
		case <-time.After(failAfter):
			t.Fatal("relays did not end")
		}
	}
}

// A reset arriving while both directions are parked reaches the other peer.
func TestRelayParkedFlowPassesReset(t *testing.T) {
	checkGoroutines(t)
	client, relayClient := tcpPair(t)
	relayUp, server := tcpPair(t)
	rl := newRelayer(0, nil)
	rl.linger = 10 * time.Millisecond
	t.Cleanup(rl.close)
	done := make(chan outcome, 1)
	rl.start(relayClient, relayUp, 0, func(res outcome) { done <- res })
	expectTransfer(t, client, server, "hello")
	waitFor(t, "both directions parked", func() bool {
		lent, _ := rl.pipes.counts()
		return lent == 0 && rl.active() == 1
	})
	time.Sleep(2 * rl.linger) // let the direction that moved "hello" park too
	reset(client)
	expectReset(t, server)
	select {
	case res := <-done:
		if res.reason != reasonReset {
			t.Errorf("outcome = %+v, want reset", res)
		}
	case <-time.After(failAfter):
		t.Fatal("relay did not end")
	}
}
