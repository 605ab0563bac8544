package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The scale bench's peers run as gwlab itself, re-executed inside a lab
// namespace as the hidden subcommand "gwlab scale-peer ROLE -addr A ...",
// so that each side is a process with an open-file budget of its own (at
// 9 000 flows the client and the server each hold 9 000 sockets):
//
//	server  listens on -addr and echoes what each connection sends
//	client  holds -flows idle connections to -addr
//	rate    -clients loops of connect, one HTTP request, close, for
//	        -duration; prints one rateResult and exits
//
// server and client print a peerReady line, then answer one JSON line per
// command read from stdin ("stats"; "open", "echo", "close") and exit at
// the end of stdin. Every wait has a deadline.
const peerCmd = "scale-peer"

// Bounds of the client's phases.
const (
	peerDialers      = 256               // concurrent connects while opening flows
	peerDialTimeout  = 5 * time.Second   // per connect
	peerOpenDeadline = 120 * time.Second // no connect starts after this
	peerEchoTimeout  = 20 * time.Second  // for all the echoes together
	rateDialTimeout  = 3 * time.Second
	rateReqTimeout   = 5 * time.Second // connect to the last byte of the answer
)

// echoMsg is what the client sends on every flow to show it is alive.
var echoMsg = []byte("gwlab-1\n")

type peerReady struct {
	Nofile uint64 `json:"nofile"` // RLIMIT_NOFILE after raising soft to hard
}

// openResult answers "open".
type openResult struct {
	Established  int            `json:"established"`
	NotAttempted int            `json:"not_attempted"` // left when the open deadline passed
	Errors       map[string]int `json:"errors"`        // by kind
	Seconds      float64        `json:"seconds"`       // until every connect had ended
	LastOK       float64        `json:"last_ok_seconds"`
}

// echoResult answers "echo".
type echoResult struct {
	Alive   int            `json:"alive"`
	Errors  map[string]int `json:"errors"`
	Seconds float64        `json:"seconds"`
}

// serverStats answers "stats".
type serverStats struct {
	Accepted     int            `json:"accepted"`
	Open         int            `json:"open"`
	Peers        map[string]int `json:"peers"` // by remote address
	AcceptErrors map[string]int `json:"accept_errors"`
}

// rateResult is what "rate" prints.
type rateResult struct {
	OK        int            `json:"ok"`
	Errors    map[string]int `json:"errors"`
	Seconds   float64        `json:"seconds"`
	ConnP50   float64        `json:"connect_p50_ms"`
	ConnP99   float64        `json:"connect_p99_ms"`
	ReqP50    float64        `json:"request_p50_ms"`
	ReqP99    float64        `json:"request_p99_ms"`
	PerSecond float64        `json:"conn_per_s"`
}

// runPeer is "gwlab scale-peer ...".
func runPeer(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "gwlab scale-peer: want server, client or rate")
		return 2
	}
	fs := flag.NewFlagSet("gwlab "+peerCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "address to listen on (server) or connect to")
	flows := fs.Int("flows", 0, "client: connections to hold")
	clients := fs.Int("clients", 32, "rate: concurrent clients")
	duration := fs.Duration("duration", 5*time.Second, "rate: how long to run")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	nofile, err := raiseNofile()
	if err != nil {
		fmt.Fprintf(stderr, "gwlab scale-peer: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "server":
		err = peerServer(*addr, nofile, stdin, enc)
	case "client":
		err = peerClient(*addr, *flows, nofile, stdin, enc)
	case "rate":
		err = enc.Encode(runRate(*addr, *clients, *duration))
	default:
		err = fmt.Errorf("unknown role %q", args[0])
	}
	if err != nil {
		fmt.Fprintf(stderr, "gwlab scale-peer %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// raiseNofile sets the soft open-file limit to the hard one and returns it.
func raiseNofile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("raising RLIMIT_NOFILE to %d: %w", r.Max, err)
	}
	return r.Cur, nil
}

// commands calls do for every line of stdin until its end.
func commands(stdin io.Reader, do func(cmd string) (any, error), enc *json.Encoder) error {
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		v, err := do(sc.Text())
		if err != nil {
			return err
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
	}
	return sc.Err()
}

// counts is a map of counters safe for concurrent use.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[k]++
}

func (c *counts) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// peerServer echoes on every accepted connection. It reads with a small
// buffer of its own: io.Copy between two TCP connections would splice
// through a pipe, two more fds per flow.
func peerServer(addr string, nofile uint64, stdin io.Reader, enc *json.Encoder) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	var accepted, open atomic.Int64
	var peers, errs counts
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				errs.add(errKind(err))
				time.Sleep(10 * time.Millisecond) // EMFILE and friends: do not spin
				continue
			}
			accepted.Add(1)
			open.Add(1)
			if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
				peers.add(ta.AddrPort().Addr().Unmap().String())
			}
			go func() {
				defer open.Add(-1)
				defer c.Close()
				var buf [64]byte
				for {
					n, err := c.Read(buf[:])
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	if err := enc.Encode(peerReady{Nofile: nofile}); err != nil {
		return err
	}
	return commands(stdin, func(cmd string) (any, error) {
		if cmd != "stats" {
			return nil, fmt.Errorf("unknown command %q", cmd)
		}
		return serverStats{Accepted: int(accepted.Load()), Open: int(open.Load()),
			Peers: peers.snapshot(), AcceptErrors: errs.snapshot()}, nil
	}, enc)
}

// peerClient holds up to flows connections to addr.
func peerClient(addr string, flows int, nofile uint64, stdin io.Reader, enc *json.Encoder) error {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err := enc.Encode(peerReady{Nofile: nofile}); err != nil {
		return err
	}
	return commands(stdin, func(cmd string) (any, error) {
		switch cmd {
		case "open":
			var r openResult
			conns, r = openFlows(addr, flows)
			return r, nil
		case "echo":
			return echoFlows(conns), nil
		case "close":
			for _, c := range conns {
				c.Close()
			}
			n := len(conns)
			conns = nil
			return map[string]int{"closed": n}, nil
		}
		return nil, fmt.Errorf("unknown command %q", cmd)
	}, enc)
}

// openFlows connects n times to addr, peerDialers at a time; no connect
// starts after peerOpenDeadline.
func openFlows(addr string, n int) ([]net.Conn, openResult) {
	start := time.Now()
	d := net.Dialer{Timeout: peerDialTimeout, Deadline: start.Add(peerOpenDeadline + peerDialTimeout)}
	var (
		mu      sync.Mutex
		conns   []net.Conn
		lastOK  time.Duration
		skipped atomic.Int64
		next    atomic.Int64
		errs    counts
		wg      sync.WaitGroup
	)
	for range min(peerDialers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if time.Since(start) > peerOpenDeadline {
					skipped.Add(1)
					continue
				}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					errs.add(errKind(err))
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				lastOK = time.Since(start)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return conns, openResult{Established: len(conns), NotAttempted: int(skipped.Load()), Errors: errs.snapshot(),
		Seconds: time.Since(start).Seconds(), LastOK: lastOK.Seconds()}
}

// echoFlows sends echoMsg on every connection and waits for it to come
// back, all within peerEchoTimeout.
func echoFlows(conns []net.Conn) echoResult {
	start := time.Now()
	deadline := start.Add(peerEchoTimeout)
	var alive atomic.Int64
	var errs counts
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetDeadline(deadline)
			defer c.SetDeadline(time.Time{})
			if _, err := c.Write(echoMsg); err != nil {
				errs.add("write: " + errKind(err))
				return
			}
			buf := make([]byte, len(echoMsg))
			if _, err := io.ReadFull(c, buf); err != nil {
				errs.add("read: " + errKind(err))
				return
			}
			if !bytes.Equal(buf, echoMsg) {
				errs.add("wrong echo")
				return
			}
			alive.Add(1)
		}()
	}
	wg.Wait()
	return echoResult{Alive: int(alive.Load()), Errors: errs.snapshot(), Seconds: time.Since(start).Seconds()}
}

// runRate runs clients loops for d, each connecting to addr, sending one
// HTTP/1.1 request with "Connection: close" and reading the answer to its
// end; the server closes first, so the client side keeps no TIME_WAIT.
func runRate(addr string, clients int, d time.Duration) rateResult {
	req := []byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")
	start := time.Now()
	end := start.Add(d)
	var mu sync.Mutex
	var connLat, reqLat []float64 // ms
	var errs counts
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cl, rl []float64
			dl := net.Dialer{Timeout: rateDialTimeout}
			for time.Now().Before(end) {
				t0 := time.Now()
				err := func() error {
					c, err := dl.Dial("tcp", addr)
					if err != nil {
						return fmt.Errorf("connect: %s", errKind(err))
					}
					defer c.Close()
					t1 := time.Now()
					_ = c.SetDeadline(t0.Add(rateReqTimeout))
					if _, err := c.Write(req); err != nil {
						return fmt.Errorf("write: %s", errKind(err))
					}
					b, err := io.ReadAll(io.LimitReader(c, 4096))
					if err != nil {
						return fmt.Errorf("read: %s", errKind(err))
					}
					if !bytes.HasPrefix(b, []byte("HTTP/1.1 200 ")) {
						return errors.New("not a 200 answer")
					}
					cl = append(cl, ms(t1.Sub(t0)))
					rl = append(rl, ms(time.Since(t0)))
					return nil
				}()
				if err != nil {
					errs.add(err.Error())
					time.Sleep(time.Millisecond) // a failing path must not spin
				}
			}
			mu.Lock()
			connLat = append(connLat, cl...)
			reqLat = append(reqLat, rl...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(connLat)
	slices.Sort(reqLat)
	return rateResult{OK: len(reqLat), Errors: errs.snapshot(), Seconds: secs, PerSecond: float64(len(reqLat)) / secs,
		ConnP50: percentile(connLat, 50), ConnP99: percentile(connLat, 99),
		ReqP50: percentile(reqLat, 50), ReqP99: percentile(reqLat, 99)}
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// errKind names the kind of a network error without its addresses, so
// that errors can be counted: "timeout", "EOF", or the errno's text
// ("connection reset by peer", "too many open files").
func errKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.As(err, &errno):
		return errno.Error()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return err.Error()
}
