package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStatusKiB(t *testing.T) {
	const status = "Name:\tgatewayd\nVmPeak:\t 1262148 kB\nVmRSS:\t   17880 kB\nThreads:\t9\n"
	got, err := statusKiB(status, "VmRSS")
	if err != nil || got != 17880 {
		t.Fatalf("statusKiB = %d, %v; want 17880", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t17880\n", "VmRSS:\tx kB\n"} {
		if n, err := statusKiB(bad, "VmRSS"); err == nil {
			t.Errorf("statusKiB(%q) = %d, want an error", bad, n)
		}
	}
}

func TestMemUsedKiB(t *testing.T) {
	const meminfo = `MemTotal:       24683520 kB
MemFree:        23473864 kB
MemAvailable:   24146372 kB
Buffers:           42612 kB
Cached:           896016 kB
SwapCached:            0 kB
`
	got, err := memUsedKiB(meminfo)
	if want := int64(24683520 - 23473864 - 42612 - 896016); err != nil || got != want {
		t.Fatalf("memUsedKiB = %d, %v; want %d", got, err, want)
	}
	if _, err := memUsedKiB("MemTotal: 1 kB\nMemFree: 1 kB\nCached: 0 kB\n"); err == nil {
		t.Error("no error without a Buffers line")
	}
}

func TestNofileLimits(t *testing.T) {
	const limits = `Limit                     Soft Limit           Hard Limit           Units
Max processes             96104                96104                processes
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`
	soft, hard, err := nofileLimits(limits)
	if err != nil || soft != "20000" || hard != "20000" {
		t.Fatalf("nofileLimits = %q, %q, %v", soft, hard, err)
	}
	if _, _, err := nofileLimits("Max processes 1 1 processes\n"); err == nil {
		t.Error("no error without a Max open files line")
	}
}

// The per-flow figures: 9 000 flows that took gatewayd from 25 to 54 025
// fds are 6 fds each; without flows there is no figure.
func TestPerFlow(t *testing.T) {
	if v, ok := perFlow(25, 54025, 9000); !ok || v != 6 {
		t.Errorf("perFlow = %v, %v; want 6", v, ok)
	}
	if v, ok := perFlow(13926, 13926-9000*4, 9000); !ok || v != -4 {
		t.Errorf("perFlow of a fall = %v, %v; want -4", v, ok)
	}
	if _, ok := perFlow(1, 2, 0); ok {
		t.Error("perFlow with no flows reports a figure")
	}
}

func TestBackNear(t *testing.T) {
	for _, c := range []struct {
		start, peak, now, slack int64
		want                    bool
	}{
		{25, 54025, 25, 16, true},
		{25, 54025, 5425, 16, true},  // a tenth of the rise
		{25, 54025, 5426, 16, false}, // just above it
		{25, 54025, 13225, 16, false},
		{25, 40, 41, 16, true},       // a small rise: the slack decides
		{100, 100, 50, 16, true},     // below the start
		{1000, 1200, 1020, 16, true}, // a tenth of 200 is more than the slack
		{1000, 1200, 1021, 16, false},
	} {
		if got := backNear(c.start, c.peak, c.now, c.slack); got != c.want {
			t.Errorf("backNear(%d, %d, %d, %d) = %v, want %v", c.start, c.peak, c.now, c.slack, got, c.want)
		}
	}
}

func TestErrKind(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{Port: 5232}, Err: os.NewSyscallError("connect", err)}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{op(syscall.ECONNRESET), "connection reset by peer"},
		{op(syscall.EMFILE), "too many open files"},
		{op(syscall.ECONNREFUSED), "connection refused"},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, "timeout"},
		{fmt.Errorf("reading: %w", io.ErrUnexpectedEOF), "EOF"},
		{io.EOF, "EOF"},
		{errors.New("something else"), "something else"},
	} {
		if got := errKind(c.err); got != c.want {
			t.Errorf("errKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestLogSummary(t *testing.T) {
	log := strings.Join([]string{
		`time=1 level=INFO msg="interception installed"`,
		`time=2 level=ERROR msg="tcp accept" err="accept4: too many open files"`,
		`time=3 level=WARN msg=slow`,
		`time=4 level=ERROR msg="tcp accept" err="accept4: too many open files"`,
		`time=5 level=ERROR msg="re-applying \"interception\" failed" err=x`,
	}, "\n")
	want := []string{`ERROR "tcp accept" x2`, `ERROR "re-applying \"interception\" failed" x1`, `WARN slow x1`}
	if got := logSummary(log); !slices.Equal(got, want) {
		t.Errorf("logSummary = %q, want %q", got, want)
	}
}

func TestCountsText(t *testing.T) {
	if got := countsText(map[string]int{"timeout": 5600, "EOF": 2, "connection reset by peer": 2}); got != "timeout x5600, EOF x2, connection reset by peer x2" {
		t.Errorf("countsText = %q", got)
	}
	if got := countsText(nil); got != "none" {
		t.Errorf("countsText(nil) = %q", got)
	}
}

// The peers on loopback: the client's flows reach the echo server and come
// back alive, the server counts them, and the rate loop gets answers.
func TestPeersOnLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmdR, cmdW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- peerServer(addr, 1, cmdR, json.NewEncoder(outW)) }()
	dec := json.NewDecoder(outR)
	var ready peerReady
	if err := dec.Decode(&ready); err != nil {
		t.Fatal(err)
	}
	conns, open := openFlows(addr, 50)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if open.Established != 50 || len(open.Errors) != 0 {
		t.Fatalf("openFlows = %+v", open)
	}
	if e := echoFlows(conns); e.Alive != 50 || len(e.Errors) != 0 {
		t.Fatalf("echoFlows = %+v", e)
	}
	var st serverStats
	if _, err := io.WriteString(cmdW, "stats\n"); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Accepted != 50 || st.Peers["127.0.0.1"] != 50 {
		t.Errorf("stats = %+v, want 50 accepted from 127.0.0.1", st)
	}
	cmdW.Close()
	if err := <-done; err != nil {
		t.Errorf("peerServer: %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hi\n") }))
	defer srv.Close()
	r := runRate(srv.Listener.Addr().String(), 2, 200*time.Millisecond)
	if r.OK == 0 || len(r.Errors) != 0 || r.ConnP50 <= 0 || r.ReqP99 < r.ReqP50 {
		t.Errorf("runRate = %+v", r)
	}
}

// printScale handles a partial report (the bench failed in the gatewayd
// cell) and a full one, and judges the targets from the per-flow figures.
func TestPrintScale(t *testing.T) {
	fwd := scaleCell{Name: "forwarding", Flows: 3000, Open: openResult{Established: 3000}, Server: serverStats{Accepted: 3000},
		Echo: echoResult{Alive: 3000}, Before: scaleSnap{MemUsedKiB: 1000, MemLabKiB: 900}, AtN: scaleSnap{MemUsedKiB: 1000 + 3000*12, MemLabKiB: 900 + 3000*12}}
	gwd := scaleCell{Name: "gatewayd", Gatewayd: true, Flows: 3000, Open: openResult{Established: 3000}, Server: serverStats{Accepted: 3000},
		Echo:    echoResult{Alive: 3000},
		Before:  scaleSnap{FDs: 25, RSSKiB: 13000, MemUsedKiB: 2000, MemLabKiB: 1900},
		AtN:     scaleSnap{FDs: 25 + 3000*6, RSSKiB: 13000 + 3000*16, MemUsedKiB: 2000 + 3000*76, MemLabKiB: 1900 + 3000*70},
		FDsBack: -1, RSSBack: 3}
	var out strings.Builder
	a := &app{opt: options{runs: 1, duration: 5 * time.Second, settle: 3 * time.Second}, out: &out}
	a.printScale(nil)
	a.printScale(&scaleReport{Flows: 3000, Idle: []scaleCell{fwd}})
	if out.Len() == 0 || strings.Contains(out.String(), "targets") {
		t.Fatalf("partial report:\n%s", out.String())
	}
	out.Reset()
	rate := func(name string, perSec float64) rateCell {
		r := rateRun{rateResult: rateResult{PerSecond: perSec}}
		return rateCell{Name: name, Runs: []rateRun{r}, Median: r}
	}
	a.printScale(&scaleReport{Flows: 3000, Idle: []scaleCell{fwd, gwd}, Rate: []rateCell{rate("forwarding", 1000), rate("gatewayd", 700)}})
	for _, want := range []string{
		"all flows alive: met; <= 2 fds per flow: missed (6.00); <= 4 KiB gatewayd RSS per flow: missed (16.0); <= 12 KiB machine memory per flow above forwarding: missed (64.0, less others 58.0)",
		"| 6.00 ", "not within 2m0s", "| 3 s ",
		"(the memory target counts as met only if both",
		"connections/s: met (0.70)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
