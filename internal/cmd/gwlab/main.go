// Command gwlab runs gatewayd in a throw-away network-namespace lab
// (internal/netlab: client <-> gateway <-> server) and shows or measures
// what it does. It needs root and only ever sends traffic inside the lab.
//
// Usage:
//
//	gwlab [flags] demo    interception step by step, with real curl
//	gwlab [flags] bench   iperf3 throughput: forwarding vs gatewayd, and
//	                      vs gatewayd's routing-policy paths (direct in
//	                      user space, kernel fast path, SOCKS5 via Dante);
//	                      dnsperf: gatewayd's DNS hijack vs dnsmasq;
//	                      scale: many idle TCP flows (fds, memory) and
//	                      the connection rate, gatewayd vs forwarding
//
// Flags (before or after the subcommand):
//
//	-gatewayd PATH   the built gatewayd binary (default bin/gatewayd)
//	-config FILE     config to start from (default configs/gateway.toml)
//	-duration D      bench: length of one iperf3, dnsperf or connection-rate run (default 5s)
//	-runs N          bench: runs per measurement, medians reported (default 3)
//	-only PARTS      bench: only these parts, comma-separated: "tcp", "udp",
//	                 "fixed" (TCP and UDP at a fixed rate: CPU per GB at
//	                 equal work), "dns", "policy", "scale" (default: all)
//	-flows N         bench, scale: idle TCP flows to hold (default 9000)
//	-settle D        bench, scale: wait after opening or echoing the flows
//	                 before reading fds and memory (default 10s)
//	-json FILE       bench: also write the results as JSON
//	-v               debug progress logs on stderr
//
// The lab is removed on every exit path, including errors and SIGINT.
// Exit codes: 0 success, 1 failure, 2 usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// options are the command-line settings.
type options struct {
	gatewayd string
	baseline string // bench: another gatewayd binary measured in the same run (TCP part)
	config   string
	duration time.Duration
	runs     int
	jsonOut  string
	only     string        // bench: comma-separated parts (benchParts); "": all
	flows    int           // bench, scale: idle TCP flows
	settle   time.Duration // bench, scale: wait before reading fds and memory
	verbose  bool
}

// app is what every subcommand gets: settings, a progress logger (stderr)
// and the report writer (stdout).
type app struct {
	opt options
	log *slog.Logger
	out io.Writer
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == peerCmd {
		os.Exit(runPeer(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("gwlab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.gatewayd, "gatewayd", "bin/gatewayd", "path of the built gatewayd binary")
	fs.StringVar(&o.baseline, "baseline", "", "bench: another gatewayd binary (e.g. the previous release) whose TCP relay is measured in the same run, for a ratio against it")
	fs.StringVar(&o.config, "config", "configs/gateway.toml", "gatewayd config to start from")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "bench: length of one iperf3, dnsperf or connection-rate run")
	fs.IntVar(&o.runs, "runs", 3, "bench: runs per measurement (medians are reported)")
	fs.StringVar(&o.jsonOut, "json", "", "bench: write results as JSON to this file")
	fs.StringVar(&o.only, "only", "", "bench: run only these parts, comma-separated: \"tcp\", \"udp\", \"fixed\" (fixed-rate TCP and UDP: CPU per GB at equal work), \"dns\", \"policy\", \"scale\"")
	fs.IntVar(&o.flows, "flows", 9000, "bench, scale: idle TCP flows to hold")
	fs.DurationVar(&o.settle, "settle", 10*time.Second, "bench, scale: wait after opening or echoing the flows before reading fds and memory (10s: two periods of gatewayd's memory trimmer, so idle flows are measured idle, not the setup's garbage)")
	fs.BoolVar(&o.verbose, "v", false, "debug progress logs")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gwlab [flags] demo|bench [flags]")
		fs.PrintDefaults()
	}
	// Flags may come before and after the subcommand.
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	cmd := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gwlab: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cmds := map[string]func(context.Context, *app) error{"demo": demo, "bench": bench}
	f, ok := cmds[cmd]
	if !ok {
		fmt.Fprintf(stderr, "gwlab: unknown command %q (want demo or bench)\n", cmd)
		return 2
	}
	if err := checkOnly(o.only); err != nil {
		fmt.Fprintf(stderr, "gwlab: %v\n", err)
		return 2
	}
	if o.flows < 1 || o.settle < 0 || o.settle > 10*time.Minute {
		fmt.Fprintln(stderr, "gwlab: -flows must be >= 1 and -settle within 0..10m")
		return 2
	}
	if o.runs < 1 || o.duration < time.Second {
		fmt.Fprintln(stderr, "gwlab: -runs must be >= 1 and -duration >= 1s")
		return 2
	}

	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	a := &app{
		opt: o,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})),
		out: stdout,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.prepare(cmd); err != nil {
		fmt.Fprintf(stderr, "gwlab %s: %v\n", cmd, err)
		return 1
	}
	if err := f(ctx, a); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintf(stderr, "gwlab %s: FAILED: %v\n", cmd, err)
		return 1
	}
	return 0
}

// prepare checks the prerequisites and makes the paths absolute (commands
// run through `ip netns exec`).
func (a *app) prepare(cmd string) error {
	missing := netlab.Missing()
	tools := []string{"ss"}
	if cmd == "demo" {
		tools = append(tools, "curl")
	} else {
		if a.benchPart("tcp") || a.benchPart("udp") || a.benchPart("fixed") || a.benchPart("policy") {
			tools = append(tools, "iperf3")
		}
		if a.benchPart("dns") {
			tools = append(tools, "dnsperf", "dnsmasq")
		}
		if a.benchPart("policy") {
			tools = append(tools, "danted")
		}
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t+" in PATH")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing prerequisites: %s (make deps installs the tools)", strings.Join(missing, ", "))
	}
	var err error
	for _, bin := range []*string{&a.opt.gatewayd, &a.opt.baseline} {
		if *bin == "" {
			continue // no baseline
		}
		if *bin, err = filepath.Abs(*bin); err != nil {
			return err
		}
		if st, err := os.Stat(*bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("gatewayd binary %s not found or not executable (build it with `make build`)", *bin)
		}
	}
	if a.opt.config, err = filepath.Abs(a.opt.config); err != nil {
		return err
	}
	if _, err := os.Stat(a.opt.config); err != nil {
		return fmt.Errorf("reading the base config: %w", err)
	}
	return nil
}

// newLab builds the lab. teardown closes it and checks that its
// namespaces are gone; it is idempotent, so it can be both deferred and
// called on the success path.
func (a *app) newLab(ctx context.Context) (lab *netlab.Lab, teardown func() error, err error) {
	start := time.Now()
	lab, err = netlab.New(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("building the lab: %w", err)
	}
	a.log.Debug("lab built", "id", lab.ID, "took", time.Since(start).Round(time.Millisecond))
	teardown = sync.OnceValue(func() error {
		if err := lab.Close(); err != nil {
			a.log.Error("removing the lab", "id", lab.ID, "err", err)
			return fmt.Errorf("removing the lab: %w", err)
		}
		if left := leftoverNamespaces(lab.ID); len(left) > 0 {
			a.log.Error("lab namespaces left behind", "namespaces", left)
			return fmt.Errorf("removing the lab: namespaces left behind: %v", left)
		}
		a.log.Debug("lab removed", "id", lab.ID)
		return nil
	})
	return lab, teardown, nil
}

// leftoverNamespaces lists /run/netns entries of the given lab.
func leftoverNamespaces(id string) []string {
	ents, _ := os.ReadDir("/run/netns")
	var left []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), id+"-") {
			left = append(left, e.Name())
		}
	}
	return left
}
