package tcp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/fdbudget"
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
	reasonFDs      = "fd limit"
	reasonNoDst    = "no destination"
)

// lingerActive is how long a direction in a goroutine of its own (a bulk
// transfer) keeps it, waiting in Go's poller like io.Copy, after its last
// bytes before it parks. Bulk flows therefore do not pay for parking at
// every pause.
const lingerActive = 500 * time.Millisecond

// outcome is how a flow ended.
type outcome struct {
	up, down int64 // bytes client->upstream, upstream->client
	reason   string
	err      error
}

// Direction indexes: each direction reads conns[d] and writes conns[1-d].
const (
	dirUp   = 0 // client -> upstream
	dirDown = 1 // upstream -> client
)

// Direction states. parked -> running is the poller's (one event, one
// goroutine), running -> parked the goroutine's, parked -> done end's; a
// compare-and-swap decides every race between them.
const (
	stateParked int32 = iota
	stateRunning
	stateDone
)

// relayer relays the flows of one Server. A direction with nothing to move
// holds no goroutine and no pipe: it waits in the relayer's epoll set
// (parking), and when its source socket has data, EOF or an error the
// poller moves what is there (pass). Only a direction with more than
// passBudget to move, or a full destination, gets a goroutine (serve),
// which parks again after lingerActive without data. An idle flow costs
// its two sockets and a few hundred bytes.
type relayer struct {
	pipes  *pipePool
	linger time.Duration

	mu     sync.Mutex
	park   *parking // created with the first flow
	flows  map[uint64]*relayFlow
	nextID uint64
	closed bool
}

func newRelayer(maxPipes int, fds *fdbudget.Budget) *relayer {
	return &relayer{pipes: newPipePool(maxPipes, fds), linger: lingerActive, flows: make(map[uint64]*relayFlow)}
}

// relayFlow is one relayed flow: client and upstream, two directions.
type relayFlow struct {
	r     *relayer
	id    uint64
	conns [2]*net.TCPConn // client, upstream
	raws  [2]syscall.RawConn
	dirs  [2]direction
	open  atomic.Int32 // directions not yet done
	idle  idleTimer
	done  func(outcome)

	once   sync.Once
	reason string
	err    error
}

// direction is one way of a flow. Its fields other than state belong to
// whichever goroutine runs it (the state's compare-and-swap hands it over).
type direction struct {
	state atomic.Int32
	n     int64 // bytes delivered
	inSet bool  // its source socket is in the epoll set
}

// start relays between client and upstream until both directions are done
// (each passes its FIN on with CloseWrite), then closes both and calls done
// once, from whichever goroutine finished the flow (start's own caller when
// the flow cannot start or ends during its first pass; end's caller when it
// ends a parked flow, so neither start nor end may be called with a lock
// that done takes). An error in either direction
// resets both conns; a flow idle for idle (0: never) is closed. start
// returns at once.
func (r *relayer) start(client, upstream *net.TCPConn, idle time.Duration, done func(outcome)) *relayFlow {
	f := &relayFlow{r: r, conns: [2]*net.TCPConn{client, upstream}, done: done}
	f.open.Store(2)
	err := r.register(f)
	if err == nil {
		err = f.syscallConns()
	}
	if err != nil {
		f.end(reasonReset, err, true)
		return f
	}
	f.idle.arm(f, idle)
	// Each direction first moves what is there already (often the
	// client's request) in the caller's goroutine, then parks: a new flow
	// starts no goroutine unless it has a bulk transfer to make.
	for d := range f.dirs {
		f.dirs[d].state.Store(stateRunning)
		f.pass(d)
	}
	return f
}

func (f *relayFlow) syscallConns() error {
	for i, c := range f.conns {
		raw, err := c.SyscallConn()
		if err != nil {
			return fmt.Errorf("relaying: %w", err)
		}
		f.raws[i] = raw
	}
	return nil
}

// register gives f its id and makes it wakeable.
func (r *relayer) register(f *relayFlow) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("relaying: relayer is closed")
	}
	if r.park == nil {
		p, err := newParking(r.wake)
		if err != nil {
			return err
		}
		r.park = p
	}
	r.nextID++
	f.id = r.nextID
	r.flows[f.id] = f
	return nil
}

func (r *relayer) unregister(f *relayFlow) {
	r.mu.Lock()
	delete(r.flows, f.id)
	r.mu.Unlock()
}

// wake serves a parked direction whose socket woke up (pass), in the
// poller's goroutine.
func (r *relayer) wake(id uint64, d int) {
	r.mu.Lock()
	f := r.flows[id]
	r.mu.Unlock()
	if f != nil && f.dirs[d].state.CompareAndSwap(stateParked, stateRunning) {
		f.pass(d)
	}
}

// active reports the flows relayed now.
func (r *relayer) active() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.flows)
}

// close stops the poller once no flow is left; later starts fail.
func (r *relayer) close() {
	r.mu.Lock()
	r.closed = true
	park := r.park
	r.mu.Unlock()
	if park != nil {
		park.close()
	}
	r.pipes.close()
}

// serve moves direction d's bytes, starting with what c holds, while it
// has any, then parks it again or finishes it.
func (f *relayFlow) serve(d int, c *carrier) {
	f.after(d, f.move(d, c))
}

// after acts on how a run of direction d ended: quiet (park it again), the
// source's FIN (nil: pass it on) or an error (reset the flow).
func (f *relayFlow) after(d int, err error) {
	switch {
	case errors.Is(err, errQuiet):
		err = f.repark(d)
		if err == nil || errors.Is(err, errTaken) {
			return
		}
		f.end(reasonReset, err, true)
	case err == nil: // the source sent FIN: pass it on; a failure shows in the other direction
		_ = f.conns[1-d].CloseWrite()
	default:
		f.end(reasonReset, err, true)
	}
	f.finish(d)
}

// errTaken: a direction that was being parked was finished by end meanwhile.
var errTaken = errors.New("direction finished while parking")

// repark parks a running direction: into the epoll set the first time,
// re-armed after that. Once its state says parked the direction is no
// longer this goroutine's, unless parking fails and the direction can be
// taken back.
func (f *relayFlow) repark(d int) error {
	dir := &f.dirs[d]
	add := !dir.inSet
	dir.inSet = true
	dir.state.Store(stateParked)
	var err error
	cerr := f.raws[d].Control(func(fd uintptr) {
		if add {
			err = f.r.park.add(int(fd), f.id, d)
		} else {
			err = f.r.park.rearm(int(fd), f.id, d)
		}
	})
	if cerr == nil && err == nil {
		return nil
	}
	if !dir.state.CompareAndSwap(stateParked, stateRunning) {
		return errTaken
	}
	if cerr != nil {
		return cerr
	}
	return err
}

// end records why the flow ended (first caller wins), closes both conns,
// which also unblocks running directions, and finishes parked ones. With
// reset, both peers get an RST instead of a FIN, so neither mistakes a
// broken flow for a complete one.
func (f *relayFlow) end(reason string, err error, reset bool) {
	f.once.Do(func() {
		f.reason, f.err = reason, err
		for _, c := range f.conns {
			if reset {
				_ = c.SetLinger(0)
			}
			_ = c.Close()
		}
	})
	for d := range f.dirs {
		if f.dirs[d].state.CompareAndSwap(stateParked, stateDone) {
			f.finish(d)
		}
	}
}

// finish marks direction d done; the last one completes the flow.
func (f *relayFlow) finish(d int) {
	f.dirs[d].state.Store(stateDone)
	if f.open.Add(-1) != 0 {
		return
	}
	f.idle.stop()
	f.r.unregister(f)
	f.once.Do(func() { f.reason = reasonEOF })
	for _, c := range f.conns {
		_ = c.Close()
	}
	f.done(outcome{up: f.dirs[dirUp].n, down: f.dirs[dirDown].n, reason: f.reason, err: f.err})
}
