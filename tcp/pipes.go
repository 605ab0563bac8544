package tcp

import (
	"fmt"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/fdbudget"
	"golang.org/x/sys/unix"
)

const (
	// pipeSize is the capacity asked of each splice pipe and the most one
	// splice call moves: Go's own splice path uses the same 1 MiB, so a
	// bulk flow moves as much per system call as io.Copy did. The kernel
	// gives less where fs.pipe-max-size or the user's pipe page budget is
	// lower; the pipe still works, only with smaller steps.
	pipeSize = 1 << 20
	// DefaultMaxPipes bounds the pipes in existence (two fds each). A
	// direction that finds none free copies through a small buffer instead,
	// so the bound costs speed, never a flow.
	DefaultMaxPipes = 512
	// pipeTrimEvery is how often spare pipes are closed: every pipe that
	// stayed in the pool, unused, for a whole period. After a burst the fds
	// go back within two periods.
	pipeTrimEvery = 5 * time.Second
)

// pipe is a kernel pipe that carries one direction's bytes between splice
// calls: socket -> pipe -> socket, without copying to user space.
type pipe struct {
	r, w int // read and write ends
	n    int // bytes in the pipe
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("creating splice pipe: %w", err)
	}
	_, _ = unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize) // best effort, see pipeSize
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func (p *pipe) close() {
	_ = unix.Close(p.r)
	_ = unix.Close(p.w)
}

// pipePool lends pipes to directions that have data to move and takes them
// back once drained. Unlike sync.Pool it is bounded (max pipes in existence)
// and gives fds back promptly: pipes that sat unused for a whole
// pipeTrimEvery period are closed.
type pipePool struct {
	fds   *fdbudget.Budget // two per pipe; nil: no budget
	max   int
	every time.Duration // trim period: pipeTrimEvery

	mu      sync.Mutex
	free    []*pipe // LIFO: the warmest pipe first
	lent    int
	lowFree int         // least len(free) since the last trim
	trim    *time.Timer // armed while free pipes exist
	closed  bool
	made    uint64 // pipes created, for tests and metrics
}

func newPipePool(max int, fds *fdbudget.Budget) *pipePool {
	if max <= 0 {
		max = DefaultMaxPipes
	}
	return &pipePool{fds: fds, max: max, every: pipeTrimEvery}
}

// pipeFDs is what one pipe costs of the fd budget.
const pipeFDs = 2

// get lends an empty pipe, or returns nil when max pipes are lent or a new
// one cannot be created (e.g. no fds left): the caller copies through a
// buffer then.
func (pp *pipePool) get() *pipe {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.lowFree = min(pp.lowFree, len(pp.free))
		pp.lent++
		return p
	}
	if pp.closed || pp.lent >= pp.max || !pp.fds.Take(pipeFDs) {
		return nil
	}
	p, err := newPipe()
	if err != nil {
		pp.fds.Give(pipeFDs)
		return nil
	}
	pp.made++
	pp.lent++
	return p
}

// put takes back a pipe. A pipe that still holds bytes (its flow broke
// mid-transfer) is closed instead: its bytes belong to nobody.
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.lent--
	if p.n != 0 || pp.closed {
		pp.discard(p)
		return
	}
	pp.free = append(pp.free, p)
	if pp.trim == nil {
		pp.lowFree = len(pp.free)
		pp.trim = time.AfterFunc(pp.every, pp.trimIdle)
	}
}

// trimIdle closes the pipes nobody took during the last period and re-arms
// itself while spares remain.
func (pp *pipePool) trimIdle() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	idle := pp.lowFree
	for _, p := range pp.free[:idle] { // the bottom of the stack: least recently used
		pp.discard(p)
	}
	pp.free = append(pp.free[:0], pp.free[idle:]...)
	pp.lowFree = len(pp.free)
	if len(pp.free) == 0 || pp.closed {
		pp.trim = nil
		return
	}
	pp.trim.Reset(pp.every)
}

// discard closes p for good. Called with pp.mu held.
func (pp *pipePool) discard(p *pipe) {
	p.close()
	pp.fds.Give(pipeFDs)
}

// counts returns the pipes lent and the spares held.
func (pp *pipePool) counts() (lent, spare int) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.lent, len(pp.free)
}

// close closes the spares; pipes still lent are closed when put back.
func (pp *pipePool) close() {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	pp.closed = true
	for _, p := range pp.free {
		pp.discard(p)
	}
	pp.free = nil
	if pp.trim != nil {
		pp.trim.Stop()
		pp.trim = nil
	}
}
