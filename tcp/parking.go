package tcp

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// parkEvents is what wakes a parked direction: data, the peer's FIN, or an
// error on its source socket (EPOLLERR and EPOLLHUP are always reported).
// One-shot: after one event the socket stays silent in this set until the
// direction parks again, so a busy direction costs the set nothing.
const parkEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// pollBatch is how many events one epoll_wait takes.
const pollBatch = 128

// parking is the epoll set where relay directions wait while they have
// nothing to move, instead of each holding a goroutine. Its epoll fd sits in
// Go's own poller, so the one poller goroutine waits like any network read
// and no thread blocks. Each source socket is in both sets: Go's (for the
// direction's waits while it is busy) and this one (while it is parked).
type parking struct {
	ep   *os.File
	raw  syscall.RawConn
	wake func(id uint64, d int) // called by the poller for each event
	done chan struct{}          // closed when the poller has returned
}

// newParking creates the epoll set and starts its poller; wake gets each
// event's flow id and direction.
func newParking(wake func(id uint64, d int)) (*parking, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating relay epoll set: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("creating relay epoll set: %w", err)
	}
	ep := os.NewFile(uintptr(fd), "relay-epoll")
	raw, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, fmt.Errorf("creating relay epoll set: %w", err)
	}
	p := &parking{ep: ep, raw: raw, wake: wake, done: make(chan struct{})}
	go p.poll()
	return p, nil
}

// key packs a flow id and a direction into epoll's 64 bits of user data.
func key(id uint64, d int) unix.EpollEvent {
	k := id<<1 | uint64(d)
	return unix.EpollEvent{Events: parkEvents, Fd: int32(uint32(k)), Pad: int32(uint32(k >> 32))}
}

func unkey(ev *unix.EpollEvent) (id uint64, d int) {
	k := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
	return k >> 1, int(k & 1)
}

// add parks a new direction: fd must be its source socket.
func (p *parking) add(fd int, id uint64, d int) error {
	if err := p.ctl(unix.EPOLL_CTL_ADD, fd, id, d); err != nil {
		return fmt.Errorf("parking relay direction: %w", err)
	}
	return nil
}

// rearm parks a direction again after it was woken. The kernel checks the
// socket at once, so data that arrived meanwhile is not missed.
func (p *parking) rearm(fd int, id uint64, d int) error {
	if err := p.ctl(unix.EPOLL_CTL_MOD, fd, id, d); err != nil {
		return fmt.Errorf("re-parking relay direction: %w", err)
	}
	return nil
}

func (p *parking) ctl(op, fd int, id uint64, d int) error {
	ev := key(id, d)
	var err error
	if cerr := p.raw.Control(func(ep uintptr) {
		err = unix.EpollCtl(int(ep), op, fd, &ev)
	}); cerr != nil {
		return cerr
	}
	return err
}

// poll hands every event to wake until the set is closed.
func (p *parking) poll() {
	defer close(p.done)
	events := make([]unix.EpollEvent, pollBatch)
	for {
		var n int
		var werr error
		err := p.raw.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			return n > 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
		})
		if err != nil || werr != nil {
			return // closed
		}
		for i := range events[:n] {
			p.wake(unkey(&events[i]))
		}
	}
}

// close stops the poller and waits for it.
func (p *parking) close() {
	_ = p.ep.Close()
	<-p.done
}
