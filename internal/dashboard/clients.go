package dashboard

import (
	"net/netip"
	"sort"
)

// The sorts here use sort.Slice rather than the generic slices.SortFunc:
// every instantiation of the latter adds several KiB of code to the
// router binary, where sort.Slice's code is shared.

// topDomains is how many domains each client's row names.
const topDomains = 5

// ClientView is one LAN device's row of the Clients panel.
type ClientView struct {
	IP         string      `json:"ip"`
	MAC        string      `json:"mac,omitempty"`
	Hostname   string      `json:"hostname,omitempty"`
	Flows      int         `json:"flows"`
	TCP        int         `json:"tcp"`
	UDP        int         `json:"udp"`
	BytesUp    uint64      `json:"bytes_up"`
	BytesDown  uint64      `json:"bytes_down"`
	TopDomains []NameCount `json:"top_domains"` // by open flows
}

// ClientsView is the /api/clients answer: the devices with flows open
// now, the busiest (bytes of their open flows) first.
type ClientsView struct {
	Clients []ClientView `json:"clients"`
}

func (d *Dashboard) clientsView() any {
	byIP := map[netip.Addr]*ClientView{}
	domains := map[netip.Addr]map[string]uint64{}
	for _, f := range d.flows() {
		a := f.Client.Addr().Unmap()
		c := byIP[a]
		if c == nil {
			c = &ClientView{IP: a.String()}
			byIP[a], domains[a] = c, map[string]uint64{}
		}
		c.Flows++
		if f.Proto == "udp" {
			c.UDP++
		} else {
			c.TCP++
		}
		c.BytesUp += f.Up
		c.BytesDown += f.Down
		if f.Domain != "" {
			domains[a][f.Domain]++
		}
	}
	names := d.names()
	out := ClientsView{Clients: make([]ClientView, 0, len(byIP))}
	for a, c := range byIP {
		n := names.name(a)
		c.MAC, c.Hostname = n.MAC, n.Hostname
		c.TopDomains = top(domains[a], topDomains)
		out.Clients = append(out.Clients, *c)
	}
	cs := out.Clients
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i].BytesUp+cs[i].BytesDown, cs[j].BytesUp+cs[j].BytesDown
		return a > b || a == b && cs[i].IP < cs[j].IP
	})
	return out
}

// top returns the n names with the highest counts, highest first (by
// name among equals).
func top(counts map[string]uint64, n int) []NameCount {
	out := make([]NameCount, 0, len(counts))
	for name, c := range counts {
		out = append(out, NameCount{Name: name, Count: c})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Name < out[j].Name
	})
	return out[:min(n, len(out))]
}
