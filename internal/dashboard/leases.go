package dashboard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"
)

// maxLeases bounds the leases read from one file: a home LAN has tens of
// devices; a file grown huge must not grow the daemon with it.
const maxLeases = 4096

// Lease is one DHCP lease: a device's address, MAC and host name.
type Lease struct {
	MAC      string
	Hostname string // "" when the client sent none
}

// leases reads a dnsmasq leases file (OpenWrt's /tmp/dhcp.leases), again
// only when its size or modification time changed. Safe for concurrent use.
type leases struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	size  int64
	byIP  map[netip.Addr]Lease
}

// get returns the leases by address; a missing file gives none, an
// unreadable one the last good contents and the error.
func (l *leases) get() (map[netip.Addr]Lease, error) {
	if l == nil || l.path == "" {
		return nil, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fi, err := os.Stat(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		l.byIP, l.mtime, l.size = nil, time.Time{}, 0
		return nil, nil
	}
	if err != nil {
		return l.byIP, fmt.Errorf("reading DHCP leases: %w", err)
	}
	if fi.ModTime().Equal(l.mtime) && fi.Size() == l.size {
		return l.byIP, nil
	}
	f, err := os.Open(l.path)
	if err != nil {
		return l.byIP, fmt.Errorf("reading DHCP leases: %w", err)
	}
	defer f.Close()
	byIP, err := parseLeases(f)
	if err != nil {
		return l.byIP, fmt.Errorf("reading DHCP leases %s: %w", l.path, err)
	}
	l.byIP, l.mtime, l.size = byIP, fi.ModTime(), fi.Size()
	return byIP, nil
}

// parseLeases parses dnsmasq's lease lines, "EXPIRY MAC IP HOSTNAME
// CLIENTID" ("*" for no host name), IPv6 lines ("EXPIRY IAID IP HOSTNAME
// DUID") included; the "duid" line and lines it cannot parse are skipped.
func parseLeases(f io.Reader) (map[netip.Addr]Lease, error) {
	out := map[netip.Addr]Lease{}
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(out) < maxLeases {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		ip, err := netip.ParseAddr(fields[2])
		if err != nil {
			continue
		}
		var l Lease
		if mac, err := net.ParseMAC(fields[1]); err == nil {
			l.MAC = mac.String()
		}
		if fields[3] != "*" {
			l.Hostname = fields[3]
		}
		out[ip.Unmap()] = l
	}
	return out, sc.Err()
}
