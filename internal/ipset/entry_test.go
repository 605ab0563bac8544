package ipset

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

func TestTimeoutSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want uint32
	}{
		{0, 0},
		{-time.Second, 0},
		{time.Millisecond, 1}, // never 0: that would be permanent
		{time.Second, 1},
		{1500 * time.Millisecond, 2},
		{time.Hour, 3600},
		{maxTimeout, 2147483},
		{100 * 24 * time.Hour, 2147483},
	} {
		if got := timeoutSeconds(tc.d); got != tc.want {
			t.Errorf("timeoutSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func TestMembers(t *testing.T) {
	for in, want := range map[string][]string{
		"0.0.0.0/0":      {"0.0.0.0/1", "128.0.0.0/1"},
		"::/0":           {"::/1", "8000::/1"},
		"198.18.1.7/24":  {"198.18.1.0/24"},
		"2001:2::1/128":  {"2001:2::1/128"},
		"198.18.0.1/32":  {"198.18.0.1/32"},
		"2001:2:1::/48":  {"2001:2:1::/48"},
		"128.0.0.0/1":    {"128.0.0.0/1"},
		"2001:2::ff/127": {"2001:2::fe/127"},
	} {
		got := members(netip.MustParsePrefix(in))
		if len(got) != len(want) {
			t.Errorf("members(%s) = %v, want %v", in, got, want)
			continue
		}
		for i := range got {
			if got[i].String() != want[i] {
				t.Errorf("members(%s) = %v, want %v", in, got, want)
			}
		}
	}
}

func TestEntryFrom(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		e    netlink.IPSetEntry
		f    Family
		want string // "" for an error
		left time.Duration
	}{
		{netlink.IPSetEntry{IP: net.IPv4(198, 18, 1, 7).To4(), CIDR: 24, Timeout: u32(0)}, IPv4, "198.18.1.0/24", 0},
		{netlink.IPSetEntry{IP: net.IPv4(198, 18, 1, 7), CIDR: 32, Timeout: u32(9)}, IPv4, "198.18.1.7/32", 9 * time.Second},
		{netlink.IPSetEntry{IP: net.ParseIP("2001:2::1")}, IPv6, "2001:2::1/128", 0},
		{netlink.IPSetEntry{IP: net.ParseIP("2001:2::1"), CIDR: 129}, IPv6, "", 0},
		{netlink.IPSetEntry{IP: net.IPv4(198, 18, 1, 7).To4(), CIDR: 33}, IPv4, "", 0},
		{netlink.IPSetEntry{IP: net.IPv4(198, 18, 1, 7).To4()}, IPv6, "", 0},
		{netlink.IPSetEntry{IP: net.IP{1, 2, 3}}, IPv4, "", 0},
		{netlink.IPSetEntry{}, IPv4, "", 0},
	} {
		got, err := entryFrom(tc.e, tc.f)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("entryFrom(%+v) = %v, want an error", tc.e, got)
		case tc.want != "" && (err != nil || got.Prefix.String() != tc.want || got.Timeout != tc.left):
			t.Errorf("entryFrom(%+v) = %v, %v; want %s, %v", tc.e, got, err, tc.want, tc.left)
		}
	}
}

// FuzzEntryFrom: whatever the kernel (or a broken library) reports, listing
// returns an error or a valid prefix of the set's family, never a panic.
func FuzzEntryFrom(f *testing.F) {
	f.Add([]byte{198, 18, 0, 1}, uint8(32), true)
	f.Add([]byte(net.ParseIP("2001:2::1")), uint8(64), false)
	f.Add([]byte{}, uint8(0), false)
	f.Fuzz(func(t *testing.T, ip []byte, cidr uint8, v4 bool) {
		fam := IPv6
		if v4 {
			fam = IPv4
		}
		e, err := entryFrom(netlink.IPSetEntry{IP: ip, CIDR: cidr}, fam)
		if err != nil {
			return
		}
		if !e.Prefix.IsValid() || e.Prefix.Addr().Is4() != v4 || e.Prefix != e.Prefix.Masked() {
			t.Errorf("entryFrom(%x, %d, %v) = %v", ip, cidr, fam, e.Prefix)
		}
	})
}
