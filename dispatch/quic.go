package dispatch

import (
	"errors"
	"sync"

	"github.com/gatewayd/gatewayd/sniff"
)

// maxQUICPending bounds the QUIC flows whose ClientHello is being read
// across datagrams; beyond it a new flow is routed on its first datagram.
const maxQUICPending = 1024

// helloFeeder reads a QUIC flow's server name from its datagrams
// (*sniff.QUICSniffer; a seam for tests).
type helloFeeder interface {
	Feed(datagram []byte) (string, error)
}

// quicFlows are the QUIC flows whose ClientHello is still incomplete: a
// client whose ClientHello does not fit one Initial (a post-quantum key
// share makes it about 1.8 KB) sends it in two datagrams, and the name is
// in the second or spans both.
type quicFlows struct {
	newFeeder func() helloFeeder

	mu sync.Mutex
	m  map[flowKey]helloFeeder
}

func newQUICFlows() *quicFlows {
	return &quicFlows{newFeeder: func() helloFeeder { return new(sniff.QUICSniffer) }}
}

// serverName feeds p, the flow's next datagram, to its sniffer. hold
// reports that the ClientHello is incomplete: route the flow on a later
// datagram. A nil p means no more will come: the flow is routed without a
// name.
func (q *quicFlows) serverName(k flowKey, p []byte) (name string, hold bool) {
	q.mu.Lock()
	f := q.m[k]
	if p == nil {
		delete(q.m, k)
		q.mu.Unlock()
		return "", false
	}
	q.mu.Unlock()
	if f == nil {
		f = q.newFeeder()
	}
	// Opening an Initial derives keys and decrypts: outside the lock. The
	// relay routes one flow's datagrams one at a time, so f is not shared.
	name, err := f.Feed(p)
	q.mu.Lock()
	defer q.mu.Unlock()
	if errors.Is(err, sniff.ErrNeedMore) && (q.m[k] == f || len(q.m) < maxQUICPending) {
		if q.m == nil {
			q.m = make(map[flowKey]helloFeeder)
		}
		q.m[k] = f
		return "", true
	}
	delete(q.m, k)
	return name, false
}
