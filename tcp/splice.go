package tcp

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errQuiet ends a direction's run when nothing arrived for the linger
// time: the direction parks.
var errQuiet = errors.New("direction quiet")

// fallbackBuf is the copy buffer of a direction that got no pipe.
const fallbackBuf = 16 << 10

var fallbackBufs = sync.Pool{New: func() any { b := make([]byte, fallbackBuf); return &b }}

// move copies direction d's source to its destination until the source
// sends FIN (nil), fails, or stays quiet for the linger time (errQuiet).
// It first delivers what c already holds. Waits happen in Go's poller: the
// source's read deadline bounds the wait for data, the destination has none
// (data in flight is never dropped for time; the idle timer ends a flow
// stuck that way).
func (f *relayFlow) move(d int, c *carrier) error {
	src, srcRaw, dstRaw := f.conns[d], f.raws[d], f.raws[1-d]
	linger := f.r.linger
	var armed time.Time // when the read deadline was last pushed
	defer c.release()
	for {
		if c.pending() == 0 {
			if now := time.Now(); now.Sub(armed) > linger/4 {
				if err := src.SetReadDeadline(now.Add(linger)); err != nil {
					return err
				}
				armed = now
			}
			n, err := c.fill(srcRaw, true)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				return errQuiet
			case err != nil:
				return err
			case n == 0:
				return nil
			}
		}
		if err := c.drain(dstRaw, true); err != nil {
			return err
		}
		f.dirs[d].n += int64(c.filled)
	}
}

// passBudget is the most a woken direction moves in the poller's goroutine
// before it gets a goroutine of its own.
const passBudget = 256 << 10

// errWouldBlock: a step that may not wait found its socket not ready.
var errWouldBlock = errors.New("would block")

// pass serves a woken direction in the poller's goroutine as far as it
// goes without waiting: what its source holds (a keepalive, a request, a
// FIN) is moved at once and the direction parks again, without a goroutine.
// A direction whose destination is full, or that has more than passBudget
// to move, goes on in a goroutine of its own with what it carries.
func (f *relayFlow) pass(d int) {
	c := &carrier{pool: f.r.pipes}
	for moved := 0; moved < passBudget; {
		n, err := c.fill(f.raws[d], false)
		switch {
		case errors.Is(err, errWouldBlock):
			f.after(d, errQuiet)
			return
		case err != nil || n == 0: // an error, or the source's FIN
			c.release()
			f.after(d, err)
			return
		}
		if err := c.drain(f.raws[1-d], false); err != nil {
			if errors.Is(err, errWouldBlock) {
				break // the destination is full: wait for it in a goroutine
			}
			c.release()
			f.after(d, err)
			return
		}
		f.dirs[d].n += int64(n)
		moved += n
	}
	go f.serve(d, c)
}

// carrier holds one direction's bytes between source and destination: a
// pipe lent by the pool (splice, no copy to user space) or, when no pipe is
// to be had, a small buffer. It holds either only while it has bytes.
type carrier struct {
	pool *pipePool
	p    *pipe
	buf  *[]byte
	off  int // buffered bytes not yet written: (*buf)[off:end]
	end  int
	// filled is what the last fill read: delivered, and counted, once
	// the carrier is drained.
	filled int
}

// fill reads what the source has and returns how much; 0 at EOF. With
// wait it waits for data in Go's poller, else it returns errWouldBlock. The
// carrier is empty when called, and is again (its pipe back in the pool)
// whenever fill found nothing.
func (c *carrier) fill(src syscall.RawConn, wait bool) (int, error) {
	var n int
	var err error
	rerr := rawIO(src.Read, src, wait, func(fd uintptr) bool {
		if c.p == nil && c.buf == nil {
			if c.p = c.pool.get(); c.p == nil {
				c.buf = fallbackBufs.Get().(*[]byte)
			}
		}
		for {
			if c.p != nil {
				n, err = splice(int(fd), c.p.w, pipeSize)
			} else {
				n, err = unix.Read(int(fd), *c.buf)
			}
			if err != unix.EINTR {
				break
			}
		}
		if err == unix.EAGAIN {
			c.release() // nothing to carry while waiting
			return false
		}
		return true
	})
	if rerr != nil {
		return 0, rerr
	}
	if err != nil {
		return 0, os.NewSyscallError("relay read", err)
	}
	if c.p != nil {
		c.p.n = n
	} else {
		c.off, c.end = 0, n
	}
	c.filled = n
	return n, nil
}

// drain writes everything the carrier holds to the destination. With wait
// it waits in Go's poller while the destination's send buffer is full,
// else it returns errWouldBlock with the rest still in the carrier.
func (c *carrier) drain(dst syscall.RawConn, wait bool) error {
	var err error
	werr := rawIO(dst.Write, dst, wait, func(fd uintptr) bool {
		for c.pending() > 0 {
			var n int
			var e error
			if c.p != nil {
				n, e = splice(c.p.r, int(fd), c.p.n)
			} else {
				n, e = unix.Write(int(fd), (*c.buf)[c.off:c.end])
			}
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return false // wait until the destination can take more
			case e != nil:
				err = e
				return true
			case n == 0:
				err = io.ErrNoProgress
				return true
			}
			if c.p != nil {
				c.p.n -= n
			} else {
				c.off += n
			}
		}
		return true
	})
	if werr != nil {
		return werr
	}
	if err != nil {
		return os.NewSyscallError("relay write", err)
	}
	return nil
}

// rawIO runs step on raw's fd: through waitIO (raw.Read or raw.Write,
// which wait in Go's poller while step returns false) with wait, else once
// through raw.Control, where a false step gives errWouldBlock.
func rawIO(waitIO func(func(uintptr) bool) error, raw syscall.RawConn, wait bool, step func(uintptr) bool) error {
	if wait {
		return waitIO(step)
	}
	done := false
	if err := raw.Control(func(fd uintptr) { done = step(fd) }); err != nil {
		return err
	}
	if !done {
		return errWouldBlock
	}
	return nil
}

func (c *carrier) pending() int {
	if c.p != nil {
		return c.p.n
	}
	return c.end - c.off
}

// release gives the pipe or buffer back (a pipe with bytes left is closed
// by the pool).
func (c *carrier) release() {
	if c.p != nil {
		c.pool.put(c.p)
		c.p = nil
	}
	if c.buf != nil {
		fallbackBufs.Put(c.buf)
		c.buf = nil
	}
}

// splice moves up to n bytes from in to out without waiting (socket or
// pipe ends). unix.Splice returns an int64 on 64-bit platforms and an int
// on 32-bit ones (mipsle, arm); this hides which.
func splice(in, out, n int) (int, error) {
	m, err := unix.Splice(in, nil, out, nil, n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	return int(m), err
}
