package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// The scale bench (issue 11): what many idle TCP flows cost gatewayd and
// the machine, and how fast short connections are set up.
//
// Idle flows: a client peer in the client namespace opens -flows
// connections to an echo server peer on Remotes[0] in the server
// namespace and holds them idle; once through plain forwarding (gatewayd
// stopped), once through gatewayd, with the same client and server. Before
// the flows and at N (after -settle) it reads gatewayd's fds and RSS
// and the machine's used memory; then one echo per flow shows which flows
// are alive; after the client closes them it polls gatewayd's fds and RSS
// until they are back near the start, for at most scaleRecovery.
//
// Connection rate: rateClients loops in the client namespace, each
// connecting, sending one HTTP request and reading the answer, for
// -duration, against the lab's HTTP server; -runs times each through
// forwarding and through gatewayd, interleaved.
//
// Ports are apart from every other part's and one per cell or run, so no
// 4-tuple meets a TIME_WAIT socket of an earlier relayed flow (see phase).
const (
	scaleSettleBefore = 2 * time.Second   // after the peers (and gatewayd) started
	scaleRecovery     = 120 * time.Second // for fds and RSS to come back after close
	scalePoll         = time.Second
	rateClients       = 32
	scaleMemReadings  = 5
	scaleMemGap       = 200 * time.Millisecond
	scaleFDSlack      = 16   // fds above the start that still count as back
	scaleRSSSlackKiB  = 2048 // RSS above the start that still counts as back
	scaleIdlePortFwd  = 5231
	scaleIdlePortGwd  = 5232
	ratePortFwd       = 5241 // + run index
	ratePortGwd       = 5251 // + run index
)

// scaleSnap is one reading; the gatewayd fields are 0 in the forwarding
// cell.
type scaleSnap struct {
	FDs        int   `json:"gatewayd_fds,omitempty"`
	RSSKiB     int64 `json:"gatewayd_rss_kib,omitempty"`
	MemUsedKiB int64 `json:"machine_used_kib,omitempty"` // MemTotal-MemFree-Buffers-Cached
	// MemLabKiB is MemUsedKiB less the anonymous memory (RssAnon) of every
	// process outside the lab's namespaces but gwlab: the same figure
	// without most of what other work on the machine moves.
	MemLabKiB int64 `json:"machine_used_less_others_anon_kib,omitempty"`
}

// scaleCell is the idle flows through forwarding or gatewayd.
type scaleCell struct {
	Name      string      `json:"name"`
	Gatewayd  bool        `json:"gatewayd"`
	Port      uint16      `json:"port"`
	Flows     int         `json:"flows_asked"`
	Open      openResult  `json:"open"`
	Server    serverStats `json:"server"` // after the settle at N
	Echo      echoResult  `json:"echo"`
	Before    scaleSnap   `json:"before"`
	AtN       scaleSnap   `json:"at_n"`       // flows open and idle, after -settle
	AfterEcho scaleSnap   `json:"after_echo"` // after the echo and -settle
	End       scaleSnap   `json:"end"`        // the last reading after close
	OtherCore float64     `json:"other_processes_core_percent"`

	// Seconds from the client's close until gatewayd's fds and RSS were
	// back near Before (backNear); -1: not within scaleRecovery.
	FDsBack float64 `json:"fds_back_s,omitempty"`
	RSSBack float64 `json:"rss_back_s,omitempty"`

	GatewaydNofile string   `json:"gatewayd_nofile,omitempty"` // soft/hard from /proc/<pid>/limits
	PeerNofile     [2]int   `json:"client_server_nofile"`
	GatewaydLog    []string `json:"gatewayd_warn_error,omitempty"` // logSummary
}

// relayed is the number of flows that reached the server: the
// denominator of the per-flow figures.
func (c *scaleCell) relayed() int { return c.Server.Accepted }

// rateRun is one run of the connection-rate clients.
type rateRun struct {
	rateResult
	Port      uint16  `json:"port"`
	ServerSaw string  `json:"server_saw"`
	OtherCore float64 `json:"other_processes_core_percent"`
}

// rateCell is the runs through forwarding or gatewayd; Median is the run
// with the median connections per second.
type rateCell struct {
	Name     string    `json:"name"`
	Gatewayd bool      `json:"gatewayd"`
	Runs     []rateRun `json:"runs"`
	Median   rateRun   `json:"median_run"`
}

type scaleReport struct {
	Flows int         `json:"flows"`
	Idle  []scaleCell `json:"idle"` // forwarding, gatewayd
	Rate  []rateCell  `json:"rate"` // forwarding, gatewayd
}

// benchScale runs the idle-flow cells, then the connection-rate cells.
// It returns what it has measured so far with an error.
func (a *app) benchScale(ctx context.Context, lab *netlab.Lab, g *gatewayd) (*scaleReport, error) {
	rep := &scaleReport{Flows: a.opt.flows}
	remote := lab.Remotes[0].V4
	for _, c := range []scaleCell{
		{Name: "forwarding", Port: scaleIdlePortFwd},
		{Name: "gatewayd", Gatewayd: true, Port: scaleIdlePortGwd},
	} {
		c.Flows = a.opt.flows
		var gw *gatewayd
		if c.Gatewayd {
			gw = g
		}
		err := a.idleCell(ctx, lab, gw, netip.AddrPortFrom(remote, c.Port), &c)
		rep.Idle = append(rep.Idle, c)
		if err != nil {
			return rep, fmt.Errorf("%d idle flows, %s: %w", c.Flows, c.Name, err)
		}
	}
	if err := a.rateCells(ctx, lab, g, remote, rep); err != nil {
		return rep, fmt.Errorf("connection rate: %w", err)
	}
	return rep, nil
}

// idleCell measures c.Flows idle flows to dst with gatewayd running (g
// non-nil) or stopped, and fills in c.
func (a *app) idleCell(ctx context.Context, lab *netlab.Lab, g *gatewayd, dst netip.AddrPort, c *scaleCell) error {
	if !waitQuiet(ctx) && ctx.Err() == nil {
		a.log.Warn("the machine is busy with other work; the memory figures may be disturbed", "waited", quietTimeout)
	}
	srv, err := startPeer(ctx, lab.Server, "server", "-addr", dst.String())
	if err != nil {
		return err
	}
	defer srv.stop()
	c.PeerNofile[1] = srv.nofile
	if g != nil {
		if err := g.start(ctx); err != nil {
			return err
		}
		defer g.proc.Kill() // no-op after a clean stop
		soft, hard, err := readNofile(g.proc.Pid())
		if err != nil {
			return err
		}
		c.GatewaydNofile = soft + "/" + hard
	}
	cl, err := startPeer(ctx, lab.Client, "client", "-addr", dst.String(), "-flows", strconv.Itoa(c.Flows))
	if err != nil {
		return err
	}
	defer cl.stop()
	c.PeerNofile[0] = cl.nofile
	a.log.Info("scale: idle flows", "cell", c.Name, "flows", c.Flows, "dst", dst, "gatewayd_nofile", c.GatewaydNofile)

	if err := sleepCtx(ctx, scaleSettleBefore); err != nil {
		return err
	}
	labNS, err := labNetNS(lab)
	if err != nil {
		return err
	}
	if c.Before, err = snap(g, labNS); err != nil {
		return err
	}
	load0, err := readLoad()
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := cl.call(ctx, "open", peerOpenDeadline+peerDialTimeout+30*time.Second, &c.Open); err != nil {
		return err
	}
	a.log.Info("scale: flows opened", "cell", c.Name, "established", c.Open.Established, "errors", c.Open.Errors,
		"not_attempted", c.Open.NotAttempted, "seconds", round2(c.Open.Seconds))
	if err := sleepCtx(ctx, a.opt.settle); err != nil {
		return err
	}
	if c.AtN, err = snap(g, labNS); err != nil {
		return err
	}
	load1, err := readLoad()
	if err != nil {
		return err
	}
	c.OtherCore = load1.otherCorePercent(load0, time.Since(t0))
	if err := srv.call(ctx, "stats", 10*time.Second, &c.Server); err != nil {
		return err
	}
	if err := checkPeers(lab, g, dst, c.Server.Peers); err != nil {
		return err
	}
	if err := cl.call(ctx, "echo", peerEchoTimeout+30*time.Second, &c.Echo); err != nil {
		return err
	}
	a.log.Info("scale: echo", "cell", c.Name, "alive", c.Echo.Alive, "errors", c.Echo.Errors)
	if err := sleepCtx(ctx, a.opt.settle); err != nil {
		return err
	}
	if c.AfterEcho, err = snap(g, labNS); err != nil {
		return err
	}
	var closed map[string]int
	if err := cl.call(ctx, "close", 30*time.Second, &closed); err != nil {
		return err
	}
	if g == nil {
		return nil
	}
	if err := a.waitRecovery(ctx, g, c); err != nil {
		return err
	}
	cl.stop()
	srv.stop()
	if err := g.stopRulesGone(ctx); err != nil {
		return err
	}
	c.GatewaydLog = logSummary(g.out.String())
	return nil
}

// waitRecovery polls gatewayd's fds and RSS after the flows closed until
// both are back near c.Before, or scaleRecovery has passed.
func (a *app) waitRecovery(ctx context.Context, g *gatewayd, c *scaleCell) error {
	start := time.Now()
	c.FDsBack, c.RSSBack = -1, -1
	for {
		var s scaleSnap
		var err error
		if s.FDs, err = countFDs(g.proc.Pid()); err != nil {
			return err
		}
		if s.RSSKiB, err = readRSS(g.proc.Pid()); err != nil {
			return err
		}
		c.End = s
		el := time.Since(start).Seconds()
		if c.FDsBack < 0 && backNear(int64(c.Before.FDs), int64(c.AtN.FDs), int64(s.FDs), scaleFDSlack) {
			c.FDsBack = el
		}
		if c.RSSBack < 0 && backNear(c.Before.RSSKiB, c.AtN.RSSKiB, s.RSSKiB, scaleRSSSlackKiB) {
			c.RSSBack = el
		}
		if c.FDsBack >= 0 && c.RSSBack >= 0 || time.Since(start) >= scaleRecovery {
			a.log.Info("scale: after close", "fds", s.FDs, "rss_kib", s.RSSKiB, "fds_back", backText(c.FDsBack), "rss_back", backText(c.RSSBack))
			return nil
		}
		if err := sleepCtx(ctx, scalePoll); err != nil {
			return err
		}
	}
}

// snap reads the machine's used memory (readMemUsedMedian), then
// gatewayd's RSS and fds (with g). The machine comes first: listing
// /proc/<pid>/fd makes the kernel build an inode and a dentry for every
// descriptor (about 1.8 KiB each, kept in its caches), which would count
// as the relay's memory.
func snap(g *gatewayd, labNS map[uint64]bool) (scaleSnap, error) {
	var s scaleSnap
	var err error
	if s.MemUsedKiB, s.MemLabKiB, err = readMemUsedMedian(labNS); err != nil {
		return s, err
	}
	if g == nil {
		return s, nil
	}
	select {
	case <-g.proc.Done():
		return s, fmt.Errorf("gatewayd exited: %v", g.proc.Wait(0))
	default:
	}
	if s.RSSKiB, err = readRSS(g.proc.Pid()); err != nil {
		return s, err
	}
	s.FDs, err = countFDs(g.proc.Pid())
	return s, err
}

// readMemUsedMedian is the median of scaleMemReadings readings of the
// machine's used memory, scaleMemGap apart (other work on the machine
// moves it by megabytes within a second), and the median of the same
// readings less other processes' anonymous memory (othersAnonKiB).
func readMemUsedMedian(labNS map[uint64]bool) (used, lab int64, err error) {
	var u, l []int64
	for i := range scaleMemReadings {
		if i > 0 {
			time.Sleep(scaleMemGap)
		}
		m, err := readMemUsed()
		if err != nil {
			return 0, 0, err
		}
		u = append(u, m)
		l = append(l, m-othersAnonKiB(labNS))
	}
	kib := func(m int64) float64 { return float64(m) }
	return int64(median(u, kib)), int64(median(l, kib)), nil
}

// labNetNS is the inode numbers of the lab's network namespaces.
func labNetNS(lab *netlab.Lab) (map[uint64]bool, error) {
	ns := map[uint64]bool{}
	for _, n := range lab.Namespaces() {
		ino, err := inode("/run/netns/" + n.Name)
		if err != nil {
			return nil, err
		}
		ns[ino] = true
	}
	return ns, nil
}

func inode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// othersAnonKiB sums RssAnon over the processes that are neither gwlab
// nor in one of the lab's network namespaces (gatewayd, its watchdog, the
// peers). Processes that exit meanwhile are skipped.
func othersAnonKiB(labNS map[uint64]bool) int64 {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	var sum int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if ino, err := inode(fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil || labNS[ino] {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		if k, err := statusKiB(string(b), "RssAnon"); err == nil { // kernel threads have none
			sum += k
		}
	}
	return sum
}

// checkPeers fails when the server saw a flow from anyone but the
// gateway's WAN address (gatewayd running) or the client (stopped).
func checkPeers(lab *netlab.Lab, g *gatewayd, dst netip.AddrPort, peers map[string]int) error {
	want, why := clientAddr(lab, dst.Addr()), "gatewayd is stopped, so the flows must be forwarded"
	if g != nil {
		want, why = gatewayAddr(lab, dst.Addr()), "gatewayd runs, so the flows must be relayed"
	}
	for p, n := range peers {
		if p != want.String() {
			return fmt.Errorf("the server saw %d flow(s) from %s, want only %s (%s)", n, p, want, why)
		}
	}
	return nil
}

// rateCells runs the connection-rate clients -runs times through
// forwarding and through gatewayd, interleaved (forwarding, gatewayd,
// forwarding, ...) so that other work on the machine falls on both alike;
// every run has a port of its own of one HTTP server in the server
// namespace.
func (a *app) rateCells(ctx context.Context, lab *netlab.Lab, g *gatewayd, remote netip.Addr, rep *scaleReport) error {
	var addrs []netip.AddrPort
	for i := range a.opt.runs {
		addrs = append(addrs, netip.AddrPortFrom(remote, uint16(ratePortFwd+i)), netip.AddrPortFrom(remote, uint16(ratePortGwd+i)))
	}
	h, err := startHTTP(lab.Server, a.log, addrs...)
	if err != nil {
		return err
	}
	defer h.Close()
	cells := []rateCell{{Name: "forwarding"}, {Name: "gatewayd", Gatewayd: true}}
	if !waitQuiet(ctx) && ctx.Err() == nil {
		a.log.Warn("the machine is busy with other work; results may be disturbed", "waited", quietTimeout)
	}
	for i := range a.opt.runs {
		for ci := range cells {
			cell := &cells[ci]
			var gw *gatewayd
			dst := netip.AddrPortFrom(remote, uint16(ratePortFwd+i))
			if cell.Gatewayd {
				if err := g.start(ctx); err != nil {
					return err
				}
				defer g.proc.Kill() // no-op after a clean stop
				gw, dst = g, netip.AddrPortFrom(remote, uint16(ratePortGwd+i))
			}
			r, err := a.rateOnce(ctx, lab, h, gw, dst)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", cell.Name, i+1, err)
			}
			a.log.Info("scale: connection rate", "cell", cell.Name, "run", i+1, "conn_per_s", round2(r.PerSecond),
				"connect_p50_ms", round2(r.ConnP50), "connect_p99_ms", round2(r.ConnP99), "errors", r.Errors,
				"other_core_pct", round2(r.OtherCore))
			cell.Runs = append(cell.Runs, r)
			if gw != nil {
				if err := gw.stopRulesGone(ctx); err != nil {
					return err
				}
			}
		}
	}
	for _, cell := range cells {
		byRate := slices.Clone(cell.Runs)
		slices.SortFunc(byRate, func(x, y rateRun) int { return cmp.Compare(x.PerSecond, y.PerSecond) })
		cell.Median = byRate[len(byRate)/2]
		rep.Rate = append(rep.Rate, cell)
	}
	return nil
}

// rateOnce runs the rate peer against dst once and checks that every
// request the server saw on dst came from the expected peer.
func (a *app) rateOnce(ctx context.Context, lab *netlab.Lab, h *httpServer, g *gatewayd, dst netip.AddrPort) (rateRun, error) {
	r := rateRun{Port: dst.Port()}
	exe, err := os.Executable()
	if err != nil {
		return r, err
	}
	load0, err := readLoad()
	if err != nil {
		return r, err
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, a.opt.duration+30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := lab.Client.Command(ctx, exe, peerCmd, "rate", "-addr", dst.String(),
		"-clients", strconv.Itoa(rateClients), "-duration", a.opt.duration.String())
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("rate peer: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &r.rateResult); err != nil {
		return r, fmt.Errorf("rate peer: %w: %q", err, stdout.String())
	}
	load1, err := readLoad()
	if err != nil {
		return r, err
	}
	r.OtherCore = load1.otherCorePercent(load0, time.Since(start))
	want := clientAddr(lab, dst.Addr())
	if g != nil {
		want = gatewayAddr(lab, dst.Addr())
	}
	seen := 0
	for _, q := range h.requests() {
		if q.Local.Port() != dst.Port() {
			continue
		}
		seen++
		if q.Peer.Addr() != want {
			return r, fmt.Errorf("the HTTP server saw a request from %s, want %s (gatewayd running: %v)", q.Peer.Addr(), want, g != nil)
		}
	}
	if seen < r.OK {
		return r, fmt.Errorf("the HTTP server saw %d requests on %s, the clients got %d answers", seen, dst, r.OK)
	}
	r.ServerSaw = want.String()
	return r, nil
}

// peerProc is a scale peer (runPeer) running in a namespace, driven one
// JSON line per command.
type peerProc struct {
	role   string
	pid    int
	stdin  io.WriteCloser
	lines  chan []byte // stdout, one line each; closed at its end
	stderr *syncBuffer
	done   chan struct{} // closed once the process is reaped
	nofile int
}

// startPeer starts `gwlab scale-peer role args...` in ns and waits for its
// ready line.
func startPeer(ctx context.Context, ns *netlab.NS, role string, args ...string) (*peerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := ns.Command(ctx, exe, append([]string{peerCmd, role}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &peerProc{role: role, lines: make(chan []byte, 4), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s peer in %s: %w", role, ns.Name, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			p.lines <- slices.Clone(sc.Bytes())
		}
		close(p.lines)
		_ = cmd.Wait()
		close(p.done)
	}()
	var ready peerReady
	if err := p.read(ctx, 10*time.Second, &ready); err != nil {
		p.stop()
		return nil, err
	}
	p.nofile = int(ready.Nofile)
	return p, nil
}

// call sends cmd and decodes the answer into v.
func (p *peerProc) call(ctx context.Context, cmd string, timeout time.Duration, v any) error {
	if _, err := fmt.Fprintln(p.stdin, cmd); err != nil {
		return fmt.Errorf("%s peer: sending %q: %w: %s", p.role, cmd, err, strings.TrimSpace(p.stderr.String()))
	}
	return p.read(ctx, timeout, v)
}

func (p *peerProc) read(ctx context.Context, timeout time.Duration, v any) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l, ok := <-p.lines:
		if !ok {
			return fmt.Errorf("%s peer exited: %s", p.role, strings.TrimSpace(p.stderr.String()))
		}
		if err := json.Unmarshal(l, v); err != nil {
			return fmt.Errorf("%s peer: %w: %q", p.role, err, l)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("%s peer: no answer within %v", p.role, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends the peer: end of stdin, then SIGKILL to its process group if
// it has not exited within 5 s. It may be called more than once.
func (p *peerProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
