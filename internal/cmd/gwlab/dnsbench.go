package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
	mdns "github.com/miekg/dns"
)

// The DNS bench: dnsperf in the client namespace queries an address that
// nothing in the lab has (dnsTarget), so only a hijack can answer. Two
// resolvers take turns on the gateway, each with the same upstream (dnsmasq
// in the server namespace on Remotes[2], authoritative for the test names):
//
//   - gatewayd, whose [dns] hijack TPROXYs the query to its resolver;
//   - dnsmasq, the classic router setup: dnsmasq on the br-lan address and
//     `iptables -t nat -A PREROUTING -i br-lan -p udp|tcp --dport 53
//     -j REDIRECT --to-ports 53` in the gateway namespace.
//
// Workloads: cache hits at full speed (dnsperf keeps dnsOutstanding queries
// in flight), cache hits at a fixed rate both sustain (latency without
// queueing), and cache misses (unique names, so every query goes upstream)
// at a fixed rate. Latencies come from dnsperf -v, one line per answer.
const (
	dnsTarget       = "198.18.50.50" // the queried address; owned by nobody
	dnsHitNames     = 100            // names of the cache-hit set
	dnsCacheSize    = 10000          // both resolvers (gatewayd's default)
	dnsClients      = 4              // dnsperf -c: client sockets
	dnsOutstanding  = 100            // dnsperf -q: queries in flight at full speed
	dnsTimeoutSecs  = 1              // dnsperf -t: a query unanswered this long is lost
	dnsHitRate      = 10000          // dnsperf -Q of the fixed-rate cache-hit runs
	dnsMissRate     = 2000           // dnsperf -Q of the cache-miss runs
	dnsHitAnswer    = "198.19.7.8"   // what the upstream answers for *.hit.test
	dnsMissAnswer   = "198.19.7.7"   // and for *.miss.test
	dnsTargetRatio  = 1.2            // target: gatewayd's cache-hit qps / dnsmasq's
	dnsRepeatBudget = 30 * time.Second
)

// dnsWorkload is one kind of dnsperf run.
type dnsWorkload struct {
	Name string `json:"name"`
	Rate int    `json:"rate_qps,omitempty"` // dnsperf -Q; 0: as fast as answers come
	Miss bool   `json:"miss"`               // unique names: every query is a cache miss
}

var dnsWorkloads = []dnsWorkload{
	{Name: "cache hit, full speed"},
	{Name: fmt.Sprintf("cache hit, %dk qps", dnsHitRate/1000), Rate: dnsHitRate},
	{Name: fmt.Sprintf("cache miss, %dk qps", dnsMissRate/1000), Rate: dnsMissRate, Miss: true},
}

// dnsRun is one dnsperf run.
type dnsRun struct {
	Sent         int     `json:"sent"`
	Completed    int     `json:"completed"`
	Lost         int     `json:"lost"`
	QPS          float64 `json:"qps"` // dnsperf's "Queries per second" (completed / run time)
	AvgMs        float64 `json:"avg_ms"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	MaxMs        float64 `json:"max_ms"`
	ResolverCore float64 `json:"resolver_core_percent"` // utime+stime / wall
	DnsperfCore  float64 `json:"dnsperf_core_percent"`
	Upstream     int     `json:"upstream_queries"` // queries the upstream answered meanwhile
	OtherCore    float64 `json:"other_processes_core_percent"`
	Attempts     int     `json:"attempts"`
	Disturbed    bool    `json:"disturbed"`
}

// dnsCell is one workload on one resolver: its runs, medians and the
// resolver's memory after the workload.
type dnsCell struct {
	Workload     string   `json:"workload"`
	Resolver     string   `json:"resolver"`
	QPS          float64  `json:"median_qps"`
	LossPercent  float64  `json:"median_loss_percent"`
	AvgMs        float64  `json:"median_avg_ms"`
	P99Ms        float64  `json:"median_p99_ms"`
	ResolverCore float64  `json:"median_resolver_core_percent"`
	DnsperfCore  float64  `json:"median_dnsperf_core_percent"`
	Upstream     float64  `json:"median_upstream_queries"`
	RSS          memUsage `json:"memory_after"`
	Runs         []dnsRun `json:"runs"`
}

// disturbed reports whether a run was kept although other processes used
// noticeable CPU during it.
func (c *dnsCell) disturbed() bool {
	return slices.ContainsFunc(c.Runs, func(r dnsRun) bool { return r.Disturbed })
}

// memUsage is a process's resident memory (VmRSS) and its peak (VmHWM).
type memUsage struct {
	RSSKiB int `json:"vmrss_kib"`
	HWMKiB int `json:"vmhwm_kib"`
}

func (m memUsage) String() string {
	return fmt.Sprintf("%.1f (peak %.1f)", float64(m.RSSKiB)/1024, float64(m.HWMKiB)/1024)
}

// dnsReport is the DNS part of the bench report.
type dnsReport struct {
	Dnsperf   string              `json:"dnsperf"`
	Dnsmasq   string              `json:"dnsmasq"`
	Seconds   int                 `json:"seconds_per_run"`
	Idle      map[string]memUsage `json:"memory_idle"` // after start, before any query
	Cells     []dnsCell           `json:"cells"`       // workload-major, resolvers in order
	HitRatio  float64             `json:"cache_hit_qps_ratio"`
	P99Lower  bool                `json:"cache_hit_p99_lower"`
	TargetMet bool                `json:"target_met"`
}

func (r *dnsReport) cell(workload, resolver string) *dnsCell {
	for i := range r.Cells {
		if r.Cells[i].Workload == workload && r.Cells[i].Resolver == resolver {
			return &r.Cells[i]
		}
	}
	return nil
}

// dnsResolverUnderTest is a running resolver: its pid, for CPU and memory.
type dnsResolverUnderTest struct {
	name string
	pid  int
}

// benchDNS runs the DNS bench in lab: gatewayd first, then dnsmasq.
func (a *app) benchDNS(ctx context.Context, lab *netlab.Lab, dir string) (*dnsReport, error) {
	rep := &dnsReport{Seconds: a.secs(), Idle: map[string]memUsage{}}
	rep.Dnsperf, rep.Dnsmasq = dnsToolVersions(ctx, lab)
	dir = filepath.Join(dir, "dns")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	up, err := startUpstream(ctx, lab)
	if err != nil {
		return nil, err
	}
	defer up.proc.Kill()
	hitFile := filepath.Join(dir, "hit.txt")
	var hit strings.Builder
	for i := range dnsHitNames {
		fmt.Fprintf(&hit, "h%03d.hit.test A\n", i)
	}
	if err := os.WriteFile(hitFile, []byte(hit.String()), 0o644); err != nil {
		return nil, err
	}
	a.printf("\nDNS: dnsperf %s in the client namespace queries %s (no one's address: only the hijack answers);\n", rep.Dnsperf, dnsTarget)
	a.printf("     upstream dnsmasq %s in the server namespace on %s:53 (authoritative for *.hit.test, *.miss.test; TTL 300)\n",
		rep.Dnsmasq, lab.Remotes[2].V4)
	a.printf("     resolvers: gatewayd ([dns] hijack, log level info) | dnsmasq on %s:53 behind nat REDIRECT (the classic hijack), both cache_size %d\n",
		lab.GatewayLAN.V4, dnsCacheSize)

	spent := new(time.Duration)
	for _, name := range []string{"gatewayd", "dnsmasq"} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a.log.Info("dns: resolver", "resolver", name)
		var err error
		if name == "gatewayd" {
			err = a.dnsWithGatewayd(ctx, lab, dir, up, hitFile, rep, spent)
		} else {
			err = a.dnsWithDnsmasq(ctx, lab, up, hitFile, rep, spent)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if g, d := rep.cell(dnsWorkloads[0].Name, "gatewayd"), rep.cell(dnsWorkloads[0].Name, "dnsmasq"); g != nil && d != nil && d.QPS > 0 {
		rep.HitRatio = g.QPS / d.QPS
		rep.P99Lower = g.P99Ms < d.P99Ms
		rep.TargetMet = rep.HitRatio >= dnsTargetRatio && rep.P99Lower
	}
	// Cells workload-major, for the table.
	slices.SortStableFunc(rep.Cells, func(x, y dnsCell) int {
		return workloadIndex(x.Workload) - workloadIndex(y.Workload)
	})
	return rep, nil
}

func workloadIndex(name string) int {
	return slices.IndexFunc(dnsWorkloads, func(w dnsWorkload) bool { return w.Name == name })
}

// dnsWithGatewayd measures gatewayd with [dns] pointed at the upstream.
func (a *app) dnsWithGatewayd(ctx context.Context, lab *netlab.Lab, dir string, up *upstream, hitFile string, rep *dnsReport, spent *time.Duration) (err error) {
	base, err := os.ReadFile(a.opt.config)
	if err != nil {
		return fmt.Errorf("reading the base config: %w", err)
	}
	text, err := dnsLabConfig(base, "udp://"+lab.Remotes[2].V4.String()+":53")
	if err != nil {
		return fmt.Errorf("writing the DNS lab config from %s: %w", a.opt.config, err)
	}
	baseCfg := filepath.Join(dir, "base.toml")
	if err := os.WriteFile(baseCfg, text, 0o600); err != nil {
		return err
	}
	ga := *a
	ga.opt.config = baseCfg
	g, err := newGatewayd(ctx, &ga, lab.Gateway, dir, "info")
	if err != nil {
		return err
	}
	if err := g.start(ctx); err != nil {
		return err
	}
	defer func() {
		g.proc.Kill() // no-op after a clean stop
		if tail := g.logTail(20); err != nil && tail != "" {
			a.printf("\n--- gatewayd (DNS) log, last lines ---\n%s\n", indent(tail))
		}
	}()
	if err := a.dnsResolver(ctx, lab, up, hitFile, rep, spent, dnsResolverUnderTest{"gatewayd", g.proc.Pid()}); err != nil {
		return err
	}
	if err := g.stop(); err != nil {
		return err
	}
	for _, l := range strings.Split(g.out.String(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			a.log.Warn("gatewayd logged", "line", l)
		}
	}
	left, err := gwdRulesLeft(ctx, lab.Gateway)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("gatewayd's rules are still installed after SIGTERM:\n%s", indent(strings.Join(left, "\n")))
	}
	return nil
}

// dnsNatRules are the classic DNS hijack for a resolver on the router:
// every LAN query to port 53, whatever its destination, is redirected to
// the router's own port 53 (the br-lan address, where dnsmasq listens).
// Installed in the gateway namespace only.
var dnsNatRules = [][]string{
	{"PREROUTING", "-i", netlab.LANBridge, "-p", "udp", "--dport", "53", "-j", "REDIRECT", "--to-ports", "53"},
	{"PREROUTING", "-i", netlab.LANBridge, "-p", "tcp", "--dport", "53", "-j", "REDIRECT", "--to-ports", "53"},
}

// dnsWithDnsmasq measures dnsmasq as the hijack resolver (gatewayd is not
// running): dnsmasq serves br-lan (the REDIRECT target is the br-lan
// address) and forwards to the same upstream as gatewayd.
func (a *app) dnsWithDnsmasq(ctx context.Context, lab *netlab.Lab, up *upstream, hitFile string, rep *dnsReport, spent *time.Duration) (err error) {
	log := &syncBuffer{}
	p, err := lab.Gateway.Start(ctx, log, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--interface="+netlab.LANBridge, "--bind-dynamic", "--user=root", "--pid-file=",
		"--port=53", "--server="+lab.Remotes[2].V4.String(), "--cache-size="+strconv.Itoa(dnsCacheSize),
		"--log-facility=-")
	if err != nil {
		return err
	}
	defer func() {
		p.Kill()
		if err != nil {
			a.printf("\n--- dnsmasq (gateway) log ---\n%s\n", indent(lastLines(log.String(), 20)))
		}
	}()
	if err := waitOutput(ctx, p, log, "started", 5*time.Second); err != nil {
		return fmt.Errorf("dnsmasq on the gateway: %w", err)
	}
	a.log.Debug("dnsmasq on the gateway", "log", strings.TrimSpace(log.String()))

	// The nat rules go away with the namespace in any case; they are also
	// removed here, with a context of their own so that SIGINT (which
	// cancels ctx) does not prevent it.
	for i, r := range dnsNatRules {
		if _, err := lab.Gateway.Run(ctx, "iptables", append([]string{"-w", "-t", "nat", "-A"}, r...)...); err != nil {
			removeNat(lab, dnsNatRules[:i], a)
			return fmt.Errorf("installing the nat REDIRECT: %w", err)
		}
	}
	defer removeNat(lab, dnsNatRules, a)

	if err := a.dnsResolver(ctx, lab, up, hitFile, rep, spent, dnsResolverUnderTest{"dnsmasq", p.Pid()}); err != nil {
		return err
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping dnsmasq: %w", err)
	}
	if err := p.Wait(5 * time.Second); err != nil {
		a.log.Debug("dnsmasq after SIGTERM", "err", err)
	}
	return nil
}

// removeNat deletes the given nat rules from the gateway namespace.
func removeNat(lab *netlab.Lab, rules [][]string, a *app) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, r := range rules {
		if _, err := lab.Gateway.Run(ctx, "iptables", append([]string{"-w", "-t", "nat", "-D"}, r...)...); err != nil {
			a.log.Warn("removing a nat rule from the lab's gateway", "err", err)
		}
	}
}

// dnsResolver checks that the running resolver answers the hijacked
// queries, warms its cache with the hit set and runs every workload.
func (a *app) dnsResolver(ctx context.Context, lab *netlab.Lab, up *upstream, hitFile string, rep *dnsReport, spent *time.Duration, r dnsResolverUnderTest) error {
	idle, err := readMem(r.pid)
	if err != nil {
		return err
	}
	rep.Idle[r.name] = idle
	if err := checkHijack(ctx, lab, "check.miss.test", dnsMissAnswer); err != nil {
		return err
	}
	// Warm the cache: every name of the hit set once.
	warm, err := a.dnsperf(ctx, lab, hitFile, dnsperfArgs{clients: 1, outstanding: 10, passes: 1})
	if err != nil {
		return fmt.Errorf("warming the cache: %w", err)
	}
	if warm.Completed != dnsHitNames {
		return fmt.Errorf("warming the cache: %d of %d queries answered", warm.Completed, dnsHitNames)
	}
	if err := checkHijack(ctx, lab, "h000.hit.test", dnsHitAnswer); err != nil {
		return err
	}
	for _, w := range dnsWorkloads {
		c := dnsCell{Workload: w.Name, Resolver: r.name}
		for run := 1; run <= a.opt.runs; run++ {
			res, err := a.dnsUndisturbed(ctx, lab, up, hitFile, w, r, run, spent)
			if err != nil {
				return fmt.Errorf("%s, run %d: %w", w.Name, run, err)
			}
			a.log.Info("dns run", "resolver", r.name, "workload", w.Name, "run", run,
				"qps", round2(res.QPS), "lost", res.Lost, "avg_ms", round3(res.AvgMs), "p99_ms", round3(res.P99Ms),
				"resolver_core_pct", round2(res.ResolverCore), "dnsperf_core_pct", round2(res.DnsperfCore), "upstream", res.Upstream, "other_core_pct", round2(res.OtherCore))
			c.Runs = append(c.Runs, res)
		}
		c.QPS = median(c.Runs, func(r dnsRun) float64 { return r.QPS })
		c.LossPercent = median(c.Runs, func(r dnsRun) float64 { return 100 * float64(r.Lost) / float64(max(1, r.Sent)) })
		c.AvgMs = median(c.Runs, func(r dnsRun) float64 { return r.AvgMs })
		c.P99Ms = median(c.Runs, func(r dnsRun) float64 { return r.P99Ms })
		c.ResolverCore = median(c.Runs, func(r dnsRun) float64 { return r.ResolverCore })
		c.DnsperfCore = median(c.Runs, func(r dnsRun) float64 { return r.DnsperfCore })
		c.Upstream = median(c.Runs, func(r dnsRun) float64 { return float64(r.Upstream) })
		if c.RSS, err = readMem(r.pid); err != nil {
			return err
		}
		rep.Cells = append(rep.Cells, c)
	}
	return nil
}

// dnsUndisturbed runs one measurement, and repeats it like undisturbed
// does for iperf3 when other processes used noticeable CPU meanwhile.
func (a *app) dnsUndisturbed(ctx context.Context, lab *netlab.Lab, up *upstream, hitFile string, w dnsWorkload, r dnsResolverUnderTest, run int, spent *time.Duration) (dnsRun, error) {
	for attempt := 1; ; attempt++ {
		res, err := a.dnsMeasure(ctx, lab, up, hitFile, w, r, fmt.Sprintf("%s-r%d-a%d", r.name, run, attempt))
		res.Attempts = attempt
		if err != nil || res.OtherCore <= disturbedCore {
			return res, err
		}
		if attempt == maxAttempts || *spent >= dnsRepeatBudget {
			res.Disturbed = true
			a.log.Warn("dns run disturbed by other processes; keeping it", "resolver", r.name, "workload", w.Name,
				"other_core_pct", round2(res.OtherCore), "attempts", attempt)
			return res, nil
		}
		a.log.Warn("dns run disturbed by other processes; repeating it once the machine is quiet",
			"resolver", r.name, "workload", w.Name, "other_core_pct", round2(res.OtherCore))
		start := time.Now()
		if !waitQuiet(ctx) && ctx.Err() == nil {
			a.log.Warn("machine still busy", "waited", quietTimeout)
		}
		*spent += time.Since(start) + time.Duration(a.secs())*time.Second
	}
}

// dnsMeasure runs dnsperf once for workload w against the resolver r.
// tag makes the miss workload's names unique to this attempt.
func (a *app) dnsMeasure(ctx context.Context, lab *netlab.Lab, up *upstream, hitFile string, w dnsWorkload, r dnsResolverUnderTest, tag string) (dnsRun, error) {
	file := hitFile
	args := dnsperfArgs{clients: dnsClients, outstanding: dnsOutstanding, rate: w.Rate, secs: a.secs(), verbose: true}
	if w.Miss {
		// More unique names than the run can send; one pass, so none
		// repeats (a repeat would be a cache hit).
		file = filepath.Join(filepath.Dir(hitFile), "miss-"+tag+".txt")
		var b strings.Builder
		for i := range w.Rate*a.secs()*5/4 + 100 {
			fmt.Fprintf(&b, "m%d.%s.miss.test A\n", i, tag)
		}
		if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
			return dnsRun{}, err
		}
		defer os.Remove(file)
		args.passes = 1
	}
	up0, err := up.answered(ctx)
	if err != nil {
		return dnsRun{}, err
	}
	cpu0, err := readProcCPU(r.pid)
	if err != nil {
		return dnsRun{}, err
	}
	load0, err := readLoad()
	if err != nil {
		return dnsRun{}, err
	}
	start := time.Now()
	res, err := a.dnsperf(ctx, lab, file, args)
	wall := time.Since(start)
	if err != nil {
		return res, err
	}
	load1, err := readLoad()
	if err != nil {
		return res, err
	}
	cpu1, err := readProcCPU(r.pid)
	if err != nil {
		return res, err
	}
	up1, err := up.answered(ctx)
	if err != nil {
		return res, err
	}
	res.ResolverCore, _ = cpu1.corePercent(cpu0, wall)
	res.OtherCore = load1.otherCorePercent(load0, wall)
	res.Upstream = up1 - up0
	if w.Miss && res.Upstream < res.Completed*9/10 {
		return res, fmt.Errorf("cache misses: the upstream answered %d queries for %d answers; the misses did not go upstream", res.Upstream, res.Completed)
	}
	if !w.Miss && res.Upstream > res.Completed/100 {
		a.log.Warn("cache hits: the upstream answered queries meanwhile", "resolver", r.name, "upstream", res.Upstream, "answers", res.Completed)
	}
	return res, nil
}

// dnsperfArgs are the settings of one dnsperf run.
type dnsperfArgs struct {
	clients, outstanding int
	rate                 int // -Q; 0: none
	secs                 int // -l; 0: none
	passes               int // -n; 0: none
	verbose              bool
}

var (
	dnsperfSentRE      = regexp.MustCompile(`Queries sent:\s+(\d+)`)
	dnsperfCompletedRE = regexp.MustCompile(`Queries completed:\s+(\d+)`)
	dnsperfLostRE      = regexp.MustCompile(`Queries lost:\s+(\d+)`)
	dnsperfQPSRE       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfAvgRE       = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	dnsperfCodesRE     = regexp.MustCompile(`Response codes:\s+(.*)`)
)

// dnsperf runs dnsperf in the client namespace against dnsTarget. With
// verbose, each answer's latency is printed (`> NOERROR name A 0.000123`);
// the output goes to a file and is read after the run, so dnsperf only
// formats the lines.
func (a *app) dnsperf(ctx context.Context, lab *netlab.Lab, file string, o dnsperfArgs) (dnsRun, error) {
	args := []string{"-s", dnsTarget, "-d", file, "-c", strconv.Itoa(o.clients), "-T", "1",
		"-q", strconv.Itoa(o.outstanding), "-t", strconv.Itoa(dnsTimeoutSecs)}
	if o.rate > 0 {
		args = append(args, "-Q", strconv.Itoa(o.rate))
	}
	if o.secs > 0 {
		args = append(args, "-l", strconv.Itoa(o.secs))
	}
	if o.passes > 0 {
		args = append(args, "-n", strconv.Itoa(o.passes))
	}
	if o.verbose {
		args = append(args, "-v")
	}
	out, err := os.CreateTemp(filepath.Dir(file), "dnsperf-*.out")
	if err != nil {
		return dnsRun{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	rctx, cancel := context.WithTimeout(ctx, time.Duration(o.secs+dnsTimeoutSecs+30)*time.Second)
	defer cancel()
	var stderr syncBuffer
	cmd := lab.Client.Command(rctx, "dnsperf", args...)
	cmd.Stdout, cmd.Stderr = out, &stderr
	line := "dnsperf " + strings.Join(args, " ")
	a.log.Debug("running", "cmd", line)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return dnsRun{}, fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(stderr.String()))
	}
	wall := time.Since(start)
	if _, err := out.Seek(0, 0); err != nil {
		return dnsRun{}, err
	}
	res, err := parseDnsperf(bufio.NewReaderSize(out, 1<<20), o.verbose)
	// ip netns exec execs dnsperf, so the child's rusage is dnsperf's.
	res.DnsperfCore = 100 * (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / wall.Seconds()
	if err != nil {
		return res, fmt.Errorf("%s: %w", line, err)
	}
	return res, nil
}

// parseDnsperf reads dnsperf's output: the per-answer lines of -v and the
// final statistics. Every answer must be NOERROR.
func parseDnsperf(r *bufio.Reader, verbose bool) (dnsRun, error) {
	var res dnsRun
	var lat []float64
	var summary strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, "> "); ok {
			f := strings.Fields(rest)
			if len(f) < 2 || f[0] == "T" || f[0] == "I" {
				continue // timed out or interrupted: counted as lost
			}
			if f[0] != "NOERROR" {
				return res, fmt.Errorf("answer %q, want NOERROR", l)
			}
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return res, fmt.Errorf("unexpected verbose line %q", l)
			}
			lat = append(lat, v*1000)
			continue
		}
		summary.WriteString(l + "\n")
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	s := summary.String()
	ints := []struct {
		re *regexp.Regexp
		v  *int
	}{{dnsperfSentRE, &res.Sent}, {dnsperfCompletedRE, &res.Completed}, {dnsperfLostRE, &res.Lost}}
	for _, x := range ints {
		m := x.re.FindStringSubmatch(s)
		if m == nil {
			return res, fmt.Errorf("no %q in the output:\n%s", x.re, indent(s))
		}
		*x.v, _ = strconv.Atoi(m[1])
	}
	for _, x := range []struct {
		re    *regexp.Regexp
		v     *float64
		scale float64
	}{{dnsperfQPSRE, &res.QPS, 1}, {dnsperfAvgRE, &res.AvgMs, 1000}} {
		m := x.re.FindStringSubmatch(s)
		if m == nil {
			return res, fmt.Errorf("no %q in the output:\n%s", x.re, indent(s))
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		*x.v = v * x.scale
	}
	if m := dnsperfCodesRE.FindStringSubmatch(s); m != nil && res.Completed > 0 && !strings.HasPrefix(m[1], "NOERROR "+strconv.Itoa(res.Completed)+" ") {
		return res, fmt.Errorf("response codes %q, want only NOERROR", m[1])
	}
	if res.Completed == 0 {
		return res, fmt.Errorf("no query was answered:\n%s", indent(s))
	}
	if verbose {
		if len(lat) != res.Completed {
			return res, fmt.Errorf("%d latency lines for %d completed queries", len(lat), res.Completed)
		}
		slices.Sort(lat)
		res.P50Ms = percentile(lat, 50)
		res.P99Ms = percentile(lat, 99)
		res.MaxMs = lat[len(lat)-1]
		var sum float64
		for _, v := range lat {
			sum += v
		}
		res.AvgMs = sum / float64(len(lat)) // dnsperf's, at µs resolution
	}
	return res, nil
}

// percentile is the nearest-rank percentile p of sorted v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := int(float64(len(v))*p/100+0.999999) - 1
	return v[min(max(i, 0), len(v)-1)]
}

// checkHijack asks dnsTarget for name from the client namespace with a
// connected UDP socket (so only an answer from dnsTarget:53 is read) and
// checks the answer.
func checkHijack(ctx context.Context, lab *netlab.Lab, name, want string) error {
	var c net.Conn
	dst := netip.AddrPortFrom(netip.MustParseAddr(dnsTarget), 53)
	if err := lab.Client.Do(func() error {
		var err error
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	q := new(mdns.Msg)
	q.SetQuestion(name+".", mdns.TypeA)
	co := &mdns.Conn{Conn: c}
	var last error
	for try := 0; try < 3 && ctx.Err() == nil; try++ {
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := co.WriteMsg(q); err != nil {
			return fmt.Errorf("querying %s for %s: %w", dst, name, err)
		}
		r, err := co.ReadMsg()
		if err != nil {
			last = err
			continue
		}
		if len(r.Answer) != 1 || !strings.HasSuffix(r.Answer[0].String(), "\t"+want) {
			return fmt.Errorf("%s from %s: answer %v, want %s", name, dst, r.Answer, want)
		}
		return nil
	}
	return fmt.Errorf("no answer from %s for %s (is the hijack working?): %v", dst, name, last)
}

// upstream is the dnsmasq in the server namespace that both resolvers
// forward to. Its statistics (SIGUSR1) count the queries it answered.
type upstream struct {
	proc *netlab.Proc
	log  *syncBuffer
}

func startUpstream(ctx context.Context, lab *netlab.Lab) (*upstream, error) {
	u := &upstream{log: &syncBuffer{}}
	addr := lab.Remotes[2].V4
	p, err := lab.Server.Start(ctx, u.log, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--bind-interfaces", "--user=root", "--pid-file=",
		"--listen-address="+addr.String(), "--port=53",
		"--address=/hit.test/"+dnsHitAnswer, "--address=/miss.test/"+dnsMissAnswer,
		"--local-ttl=300", "--log-facility=-")
	if err != nil {
		return nil, err
	}
	u.proc = p
	if err := waitOutput(ctx, p, u.log, "started", 5*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("upstream dnsmasq: %w", err)
	}
	return u, nil
}

var dnsmasqStatsRE = regexp.MustCompile(`queries forwarded (\d+), queries answered locally (\d+)`)

// answered asks dnsmasq for its statistics and returns the queries it has
// forwarded or answered so far.
func (u *upstream) answered(ctx context.Context) (int, error) {
	n := strings.Count(u.log.String(), "queries answered locally")
	if err := u.proc.Signal(syscall.SIGUSR1); err != nil {
		return 0, fmt.Errorf("upstream dnsmasq: %w", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		s := u.log.String()
		if strings.Count(s, "queries answered locally") > n {
			m := dnsmasqStatsRE.FindAllStringSubmatch(s, -1)
			last := m[len(m)-1]
			f, _ := strconv.Atoi(last[1])
			l, _ := strconv.Atoi(last[2])
			return f + l, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("upstream dnsmasq printed no statistics after SIGUSR1:\n%s", indent(lastLines(s, 10)))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// waitOutput waits until log contains substr.
func waitOutput(ctx context.Context, p *netlab.Proc, log *syncBuffer, substr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(log.String(), substr) {
		select {
		case <-p.Done():
			return fmt.Errorf("exited (%v):\n%s", p.Wait(0), indent(log.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q within %v:\n%s", substr, timeout, indent(log.String()))
		}
	}
	return nil
}

// dnsLabConfig is the base config with the [dns] section enabled,
// forwarding to upstream only (no resolv.conf) and the cache size set.
func dnsLabConfig(base []byte, upstream string) ([]byte, error) {
	s := string(base)
	start := regexp.MustCompile(`(?m)^\[dns\]\s*$`).FindStringIndex(s)
	if start == nil {
		return nil, fmt.Errorf("base config: no [dns] section")
	}
	body := s[start[1]:]
	end := len(body)
	if loc := regexp.MustCompile(`(?m)^\[`).FindStringIndex(body); loc != nil {
		end = loc[0]
	}
	sec := body[:end]
	for key, val := range map[string]string{
		"enabled":     "true",
		"upstreams":   fmt.Sprintf("[%q]", upstream),
		"resolv_conf": `""`,
		"cache_size":  strconv.Itoa(dnsCacheSize),
	} {
		re := regexp.MustCompile(`(?m)^` + key + `\s*=.*$`)
		line := key + " = " + val
		switch n := len(re.FindAllString(sec, -1)); n {
		case 0:
			sec = "\n" + line + sec
		case 1:
			sec = re.ReplaceAllLiteralString(sec, line)
		default:
			return nil, fmt.Errorf("base config: %d %s lines in [dns]", n, key)
		}
	}
	return []byte(s[:start[1]] + sec + body[end:]), nil
}

// readMem reads VmRSS and VmHWM of pid.
func readMem(pid int) (memUsage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memUsage{}, fmt.Errorf("reading the memory of pid %d: %w", pid, err)
	}
	var m memUsage
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			m.RSSKiB, _ = strconv.Atoi(f[1])
		case "VmHWM:":
			m.HWMKiB, _ = strconv.Atoi(f[1])
		}
	}
	if m.RSSKiB == 0 {
		return m, fmt.Errorf("reading the memory of pid %d: no VmRSS", pid)
	}
	return m, nil
}

// dnsToolVersions returns dnsperf's and dnsmasq's versions.
func dnsToolVersions(ctx context.Context, lab *netlab.Lab) (dnsperf, dnsmasq string) {
	dnsperf, dnsmasq = "unknown", "unknown"
	if out, _ := lab.Client.Run(ctx, "dnsperf", "-h"); out != "" {
		if m := regexp.MustCompile(`Version (\S+)`).FindStringSubmatch(out); m != nil {
			dnsperf = m[1]
		}
	}
	if out, _ := lab.Server.Run(ctx, "dnsmasq", "--version"); out != "" {
		if m := regexp.MustCompile(`Dnsmasq version (\S+)`).FindStringSubmatch(out); m != nil {
			dnsmasq = m[1]
		}
	}
	return dnsperf, dnsmasq
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// printDNSTable prints the DNS results and the target verdict.
func (a *app) printDNSTable(rep *dnsReport) {
	if rep == nil {
		return
	}
	a.printf("\nDNS (dnsperf %s -s %s -c %d -T 1 -t %d, %ds per run, medians of %d runs; latency from dnsperf -v per answer):\n\n",
		rep.Dnsperf, dnsTarget, dnsClients, dnsTimeoutSecs, rep.Seconds, a.opt.runs)
	tw := tabwriter.NewWriter(a.out, 0, 0, 1, ' ', 0)
	row := func(cells ...string) { fmt.Fprintf(tw, "| %s\t|\n", strings.Join(cells, "\t| ")) }
	row("workload", "resolver", "qps", "lost", "avg ms", "p99 ms", "resolver %core", "CPU µs/answer", "dnsperf %core", "upstream queries", "RSS MiB after (peak)")
	row("---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:")
	for _, c := range rep.Cells {
		name := c.Workload
		if c.disturbed() {
			name += " (*)"
		}
		row(name, c.Resolver,
			fmt.Sprintf("%.0f", c.QPS),
			fmt.Sprintf("%.2f%%", c.LossPercent),
			fmt.Sprintf("%.3f", c.AvgMs),
			fmt.Sprintf("%.3f", c.P99Ms),
			fmt.Sprintf("%.0f", c.ResolverCore),
			fmt.Sprintf("%.1f", 1e4*c.ResolverCore/max(c.QPS, 1)),
			fmt.Sprintf("%.0f", c.DnsperfCore),
			fmt.Sprintf("%.0f", c.Upstream),
			c.RSS.String())
	}
	_ = tw.Flush()
	var idle []string
	for _, name := range []string{"gatewayd", "dnsmasq"} {
		if m, ok := rep.Idle[name]; ok {
			idle = append(idle, fmt.Sprintf("%s %s", name, m))
		}
	}
	a.printf("\nfull speed: dnsperf keeps %d queries in flight; rate runs: dnsperf -Q; misses: unique names, one pass (-n 1)\n", dnsOutstanding)
	a.printf("%%core: the process's utime+stime over the run's wall time (100 = one of %d CPUs); CPU µs/answer = %%core / qps\n", runtime.NumCPU())
	a.printf("(*): a run kept although other processes used > %.0f%% of a CPU during it (after %d attempts or with the repeat budget spent)\n", disturbedCore, maxAttempts)
	a.printf("RSS MiB idle (after start, before any query): %s\n", strings.Join(idle, ", "))
	g, d := rep.cell(dnsWorkloads[0].Name, "gatewayd"), rep.cell(dnsWorkloads[0].Name, "dnsmasq")
	if g != nil && d != nil {
		verdict := "missed"
		if rep.TargetMet {
			verdict = "met"
		}
		if g.disturbed() || d.disturbed() {
			verdict += " (inconclusive: other processes disturbed runs of this comparison, marked (*))"
		}
		a.printf("cache hits at full speed: gatewayd/dnsmasq = %.2fx qps (target >= %.1fx), p99 %.3f vs %.3f ms (target lower): %s\n",
			rep.HitRatio, dnsTargetRatio, g.P99Ms, d.P99Ms, verdict)
	}
	a.printf("individual runs, qps / p99 ms:\n")
	for _, c := range rep.Cells {
		var v []string
		for _, r := range c.Runs {
			v = append(v, fmt.Sprintf("%.0f/%.3f", r.QPS, r.P99Ms))
		}
		a.printf("    %-24s %-9s %s\n", c.Workload+":", c.Resolver, strings.Join(v, "  "))
	}
}
