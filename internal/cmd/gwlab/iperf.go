package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// iperfServer is `iperf3 -s -B addr -p port` in the server namespace. Its
// text output (flushed per line) tells who connected: the gateway's WAN
// address when gatewayd relayed the flow, the client's otherwise.
type iperfServer struct {
	addr netip.AddrPort
	proc *netlab.Proc
	out  *syncBuffer
}

// startIperfServer starts the server and waits until it listens.
func startIperfServer(ctx context.Context, ns *netlab.NS, addr netip.AddrPort) (*iperfServer, error) {
	s := &iperfServer{addr: addr, out: &syncBuffer{}}
	p, err := ns.Start(ctx, s.out, "iperf3", "-s", "-B", addr.Addr().String(),
		"-p", strconv.Itoa(int(addr.Port())), "--forceflush")
	if err != nil {
		return nil, fmt.Errorf("starting the iperf3 server on %s: %w", addr, err)
	}
	s.proc = p
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := ns.Run(ctx, "ss", "-Hltn", "sport = :"+strconv.Itoa(int(addr.Port())))
		if err != nil {
			return nil, fmt.Errorf("waiting for the iperf3 server on %s: %w", addr, err)
		}
		if strings.Contains(out, addr.String()) {
			return s, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("iperf3 server on %s exited: %v\n%s", addr, p.Wait(0), indent(s.out.String()))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("iperf3 server on %s not listening after 5s", addr)
		}
	}
}

// stop ends the server.
func (s *iperfServer) stop() { s.proc.Kill() }

var streamPeerRE = regexp.MustCompile(`connected to ([0-9a-fA-F:.]+) port \d+`)

// streamPeers waits until the server's output after offset shows n data
// streams and returns their peer addresses.
func (s *iperfServer) streamPeers(offset, n int) ([]netip.Addr, error) {
	deadline := time.Now().Add(2 * time.Second)
	for {
		var peers []netip.Addr
		for _, m := range streamPeerRE.FindAllStringSubmatch(s.out.String()[offset:], -1) {
			a, err := netip.ParseAddr(m[1])
			if err != nil {
				return nil, fmt.Errorf("iperf3 server output: bad peer %q", m[1])
			}
			peers = append(peers, a.Unmap())
		}
		if len(peers) >= n || time.Now().After(deadline) {
			if len(peers) != n {
				return peers, fmt.Errorf("iperf3 server on %s reported %d data streams, want %d", s.addr, len(peers), n)
			}
			return peers, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// iperfResult is what gwlab uses of iperf3's JSON report.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Bytes         float64 `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			LostPercent   float64 `json:"lost_percent"` // UDP only
		} `json:"sum_received"`
		CPU struct {
			Host   float64 `json:"host_total"`
			Remote float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

// runIperfClient runs `iperf3 -c dst -p port -t secs -P streams [-R] [-b
// rate] -J` in the client namespace (the case's rate, if it has one, split
// over its streams: -b is per stream). It retries briefly while the server
// is still busy with the previous test.
func runIperfClient(ctx context.Context, ns *netlab.NS, dst netip.AddrPort, secs int, c benchCase) (iperfResult, error) {
	args := []string{"-c", dst.Addr().String(), "-p", strconv.Itoa(int(dst.Port())),
		"-t", strconv.Itoa(secs), "-P", strconv.Itoa(c.Streams), "-J", "--connect-timeout", "3000"}
	if c.Reverse {
		args = append(args, "-R")
	}
	if c.RateMbps > 0 {
		args = append(args, "-b", rateArg(c.RateMbps/float64(c.Streams)))
	}
	for attempt := 1; ; attempt++ {
		res, err := iperfOnce(ctx, ns, time.Duration(secs+20)*time.Second, args)
		if err == nil || !strings.Contains(res.Error, "busy") || attempt == 5 {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func iperfOnce(ctx context.Context, ns *netlab.NS, timeout time.Duration, args []string) (iperfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := ns.Command(ctx, "iperf3", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	line := "iperf3 " + strings.Join(args, " ")
	var res iperfResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return res, fmt.Errorf("%s: %v; no JSON report (%v): %s", line, runErr, err, strings.TrimSpace(stderr.String()))
	}
	if res.Error != "" {
		return res, fmt.Errorf("%s: %s", line, res.Error)
	}
	if runErr != nil {
		return res, fmt.Errorf("%s: %w: %s", line, runErr, strings.TrimSpace(stderr.String()))
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		return res, fmt.Errorf("%s: the report has no end.sum_received.bits_per_second", line)
	}
	return res, nil
}

// rateArg is iperf3's -b value for a rate in Mbit/s, to the kbit/s.
func rateArg(mbps float64) string { return fmt.Sprintf("%.0fK", mbps*1000) }
