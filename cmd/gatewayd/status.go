package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/status"
)

// statusDefaults of `gatewayd status`.
const (
	statusTimeout = 5 * time.Second // a local endpoint answers in milliseconds; longer means it is stuck
	statusTop     = 10              // flows listed in the table
	// digestShown is how many hex digits of the config digest are printed:
	// enough to tell revisions apart at a glance.
	digestShown = 12
)

// runStatus is `gatewayd status [-c FILE | -addr host:port] [-json] [-top N]`:
// it reads /status from a running gatewayd and prints a summary, or the
// JSON document as received. The endpoint's address is -addr, else the
// status.listen of the config (-c, or the default config file if it
// exists), else status.DefaultAddr.
func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gatewayd status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", status.DefaultAddr, "address of gatewayd's status endpoint (default: status.listen of the config)")
	cfgPath := fs.String("c", defaultConfig, "config file whose status.listen to read")
	asJSON := fs.Bool("json", false, "print the /status JSON document as received")
	top := fs.Int("top", statusTop, "number of flows to list, largest first")
	timeout := fs.Duration("timeout", statusTimeout, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatewayd status: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if *top < 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "gatewayd status: -top must be 0 or more and -timeout positive")
		return exitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["addr"] && set["c"] {
		fmt.Fprintln(stderr, "gatewayd status: give -addr or -c, not both")
		return exitUsage
	}
	if !set["addr"] {
		a, code := statusAddrFromConfig(*cfgPath, set["c"], stderr)
		if code != exitOK {
			return code
		}
		*addr = a
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	snap, raw, err := status.FetchStatus(ctx, nil, *addr)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd status: %v\n", err)
		if errors.Is(err, status.ErrUnreachable) {
			fmt.Fprintf(stderr, "gatewayd status: is gatewayd running with its status endpoint on %s? (-addr sets another)\n", *addr)
		}
		return exitFailure
	}
	if *asJSON {
		_, _ = stdout.Write(raw)
		return exitOK
	}
	printStatus(stdout, snap, *top, time.Now())
	return exitOK
}

// statusAddrFromConfig returns the status.listen of the config at path.
// A config named with -c (explicit) must load and enable the endpoint; the
// default config may be missing (then status.DefaultAddr, the built-in
// listen address) but if present must be valid too: it is what the
// running gatewayd most likely reads.
func statusAddrFromConfig(path string, explicit bool, stderr io.Writer) (string, int) {
	if !explicit {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return status.DefaultAddr, exitOK
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd status: %v (-addr names the endpoint without a config)\n", err)
		if errors.Is(err, config.ErrInvalid) {
			return "", exitConfig
		}
		return "", exitFailure
	}
	if !cfg.Status.Enabled {
		fmt.Fprintf(stderr, "gatewayd status: the status endpoint is off in %s (status.enabled = false)\n", cfg.Path())
		return "", exitFailure
	}
	return cfg.Status.Listen.String(), exitOK
}

// printStatus writes the human summary of snap.
func printStatus(w io.Writer, s *status.Snapshot, top int, now time.Time) {
	fmt.Fprintf(w, "gatewayd %s (%s)\n", clean(s.Version), clean(s.GoVersion))
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	uptime := time.Duration(s.UptimeSeconds * float64(time.Second))
	fmt.Fprintf(tw, "  up:\t%s", humanDuration(uptime))
	if !s.Started.IsZero() {
		fmt.Fprintf(tw, " (since %s)", s.Started.Local().Format("2006-01-02 15:04:05 MST"))
	}
	fmt.Fprintln(tw)
	digest := s.Config.SHA256
	fmt.Fprintf(tw, "  config:\t%s (sha256 %s)\n", clean(s.Config.Path), clean(digest[:min(len(digest), digestShown)]))
	var ls []string
	for _, l := range s.Listeners {
		ls = append(ls, clean(l.Name)+" "+l.Addr.String())
	}
	fmt.Fprintf(tw, "  listening:\t%s\n", strings.Join(ls, ", "))
	fmt.Fprintf(tw, "  flows:\t%d active%s\n", s.Flows.Active, flowBreakdown(s.Flows))
	_ = tw.Flush()

	flows := s.ActiveFlows[:min(len(s.ActiveFlows), top)]
	if len(flows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nlargest flows (%d of %d):\n", len(flows), s.Flows.Active)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROTO\tCLIENT\tDESTINATION\tDOMAIN\tOUTBOUND\tUP\tDOWN\tAGE")
	for _, f := range flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(f.Proto), f.Client, f.Destination,
			orDash(f.Domain), orDash(f.Outbound), humanBytes(f.BytesUp), humanBytes(f.BytesDown),
			humanDuration(time.Duration(f.AgeSeconds*float64(time.Second))))
	}
	_ = tw.Flush()
}

// flowBreakdown renders ": tcp 2, udp 1; outbound direct 3" (keys sorted).
func flowBreakdown(s status.FlowSummary) string {
	part := func(m map[string]int) string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, clean(k)+" "+strconv.Itoa(m[k]))
		}
		return strings.Join(out, ", ")
	}
	var b strings.Builder
	if len(s.ByProto) > 0 {
		b.WriteString(": " + part(s.ByProto))
	}
	if len(s.ByOutbound) > 0 {
		b.WriteString("; outbound " + part(s.ByOutbound))
	}
	return b.String()
}

// clean makes a string from the network safe for a terminal: anything but
// printable characters (escape sequences in a domain name, say) is shown
// quoted with escapes instead.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.QuoteToGraphic(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

// humanBytes renders n in IEC units with one decimal: 1.5 KiB, 3.0 GiB.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < len("KMGTPE")-1; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanDuration renders d to the second, with days past 24 hours: 3d4h5m6s.
func humanDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	const day = 24 * time.Hour
	if d < day {
		return d.String()
	}
	days := d / day
	return fmt.Sprintf("%dd%s", days, (d - days*day).String())
}
