package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// dantedPort is the SOCKS5 port of the policy bench's upstream proxy (the
// port IANA assigns to SOCKS).
const dantedPort = 1080

// danted is Dante's SOCKS server (Debian's dante-server) in the server
// namespace: the real SOCKS5 upstream the policy bench routes a flow
// through. It forks worker processes (negotiate, request and I/O
// children), so its CPU time is that of the whole process tree.
type danted struct {
	addr netip.AddrPort // where it listens; it also connects out from this address
	proc *netlab.Proc
	log  *syncBuffer
}

// dantedConfig is a SOCKS5 server without authentication that accepts
// clients from client only and CONNECTs to dst only. "external" makes
// Dante connect out from its listening address, so the iperf3 server sees
// that address as its peer: proof that the flow came through Dante.
func dantedConfig(listen netip.AddrPort, client, dst netip.Addr) string {
	return fmt.Sprintf(`logoutput: stderr
internal: %s port = %d
external: %s
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
	from: %s to: 0.0.0.0/0
	log: error
}
socks pass {
	from: %s to: %s
	command: connect
	log: error
}
`, listen.Addr(), listen.Port(), listen.Addr(),
		netip.PrefixFrom(client, client.BitLen()), netip.PrefixFrom(client, client.BitLen()), netip.PrefixFrom(dst, dst.BitLen()))
}

// startDanted writes the config into dir and starts danted in ns, listening
// on listen, for SOCKS clients at client going to dst. It returns once the
// port is listening.
func startDanted(ctx context.Context, ns *netlab.NS, dir string, listen netip.AddrPort, client, dst netip.Addr) (*danted, error) {
	conf := filepath.Join(dir, "danted.conf")
	if err := os.WriteFile(conf, []byte(dantedConfig(listen, client, dst)), 0o600); err != nil {
		return nil, fmt.Errorf("writing the danted config: %w", err)
	}
	d := &danted{addr: listen, log: &syncBuffer{}}
	// TMPDIR: Dante keeps its lock files there (default /tmp, shared with
	// the host); the pid file would default to /var/run/danted.pid. env
	// execs danted, so the process started is danted itself.
	p, err := ns.Start(ctx, d.log, "env", "TMPDIR="+dir, "danted", "-f", conf, "-p", filepath.Join(dir, "danted.pid"))
	if err != nil {
		return nil, fmt.Errorf("starting danted on %s: %w", listen, err)
	}
	d.proc = p
	if err := waitListening(ctx, ns, p, listen, 5*time.Second); err != nil {
		p.Kill()
		return nil, fmt.Errorf("danted on %s: %w\n%s", listen, err, indent(lastLines(d.log.String(), 10)))
	}
	return d, nil
}

// waitListening polls ss until a TCP socket listens on addr.
func waitListening(ctx context.Context, ns *netlab.NS, p *netlab.Proc, addr netip.AddrPort, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := ns.Run(ctx, "ss", "-Hltn", "sport = :"+strconv.Itoa(int(addr.Port())))
		if err != nil {
			return fmt.Errorf("waiting for a listener on %s: %w", addr, err)
		}
		if strings.Contains(out, addr.String()) {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited before listening on %s: %v", addr, p.Wait(0))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v", addr, timeout)
		}
	}
}

// stop asks danted to exit (SIGTERM, which its children get from it too)
// and kills the process group if it has not within a few seconds.
func (d *danted) stop() {
	if err := d.proc.Signal(syscall.SIGTERM); err == nil {
		_ = d.proc.Wait(3 * time.Second)
	}
	d.proc.Kill()
}

// ticks is the CPU time (clock ticks) of danted and its worker processes
// so far, including workers that have exited and been reaped.
func (d *danted) ticks() (uint64, error) {
	return treeTicks(d.proc.Pid())
}

// treeTicks sums utime+stime of root and its direct children, plus root's
// cutime+cstime (its reaped children). A Dante server is exactly that
// deep: the main process and its workers.
func treeTicks(root int) (uint64, error) {
	st, err := readStat(root)
	if err != nil {
		return 0, fmt.Errorf("reading the CPU time of pid %d: %w", root, err)
	}
	total := st.utime + st.stime + st.cutime + st.cstime
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("listing /proc: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == root {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.ppid != root {
			continue // not a child, or exited meanwhile
		}
		total += st.utime + st.stime
	}
	return total, nil
}

// procStat is what treeTicks uses of /proc/<pid>/stat.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime uint64
}

// readStat parses /proc/<pid>/stat: ppid is field 4, utime..cstime are
// fields 14-17. The command name (field 2) may contain spaces and
// parentheses, so fields are counted from its last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("malformed stat %q", s)
	}
	var st procStat
	var err error
	if st.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("malformed stat %q: ppid: %w", s, err)
	}
	for j, v := range []*uint64{&st.utime, &st.stime, &st.cutime, &st.cstime} {
		// cutime and cstime are signed in proc(5) but never negative.
		if *v, err = strconv.ParseUint(f[11+j], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("malformed stat %q: field %d: %w", s, 14+j, err)
		}
	}
	return st, nil
}

// dantedVersion is e.g. "Dante v1.4.2", from `danted -v`.
func dantedVersion(ctx context.Context, ns *netlab.NS) string {
	out, err := ns.Run(ctx, "danted", "-v")
	if err != nil {
		return "unknown"
	}
	v, _, _ := strings.Cut(strings.TrimSpace(out), ".  ")
	return v
}
