package tcp

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Close reasons, as logged.
const (
	reasonEOF      = "eof"
	reasonIdle     = "idle"
	reasonReset    = "reset"
	reasonShutdown = "shutdown"
	reasonDial     = "dial error"
	reasonLoop     = "loop"
	reasonLimit    = "limit"
	reasonNoDst    = "no destination"
)

// errIdle ends a direction whose flow went idle.
var errIdle = errors.New("flow idle")

// outcome is how a flow ended.
type outcome struct {
	up, down int64 // bytes client->upstream, upstream->client
	reason   string
	err      error
}

// relay copies between client and upstream until both directions are done,
// then closes both. It runs one direction in a new goroutine and the other in
// the caller's. Each direction is io.Copy between the two concrete
// *net.TCPConn values, so Linux splices without copying to user space, and
// ends with CloseWrite to pass the FIN on (half-close). An error in either
// direction resets both conns; an idle flow is closed.
func relay(client, upstream *net.TCPConn, idle time.Duration) outcome {
	r := &relayState{
		client:   client,
		upstream: upstream,
		watch:    idleWatch{timeout: idle, conns: [2]*net.TCPConn{client, upstream}},
	}
	r.watch.arm()
	var res outcome
	upDone := make(chan struct{})
	go func() {
		defer close(upDone)
		res.up = r.direction(upstream, client)
	}()
	res.down = r.direction(client, upstream) // the caller's goroutine is the second one
	<-upDone
	r.end(reasonEOF, nil, false) // no-op if a direction ended the flow
	res.reason, res.err = r.reason, r.err
	return res
}

// relayState is shared by the two directions of one flow.
type relayState struct {
	client, upstream *net.TCPConn
	watch            idleWatch

	once   sync.Once
	reason string
	err    error
}

// direction copies src to dst and returns the bytes copied.
func (r *relayState) direction(dst, src *net.TCPConn) int64 {
	n, err := r.copy(dst, src)
	switch {
	case err == nil:
		_ = dst.CloseWrite() // src sent FIN: pass it on; a failure shows in the other direction
	case errors.Is(err, errIdle):
		r.end(reasonIdle, nil, false)
	default:
		r.end(reasonReset, err, true)
	}
	return n
}

// copy is io.Copy that survives read deadlines while the flow is active.
func (r *relayState) copy(dst, src *net.TCPConn) (int64, error) {
	var total int64
	for {
		n, err := io.Copy(dst, src)
		total += n
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		if !r.watch.active() {
			return total, errIdle
		}
	}
}

// end records why the flow ended (first caller wins) and closes both conns,
// which also unblocks the other direction. With reset, both peers get an RST
// instead of a FIN, so neither mistakes a broken flow for a complete one.
func (r *relayState) end(reason string, err error, reset bool) {
	r.once.Do(func() {
		r.reason, r.err = reason, err
		if reset {
			_ = r.client.SetLinger(0)
			_ = r.upstream.SetLinger(0)
		}
		_ = r.client.Close()
		_ = r.upstream.Close()
	})
}
