package dns

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// localTTL is the TTL of answers gatewayd makes up itself (hosts list and
// block list): short, so that a changed configuration reaches clients
// within a minute, long enough to spare them a query per connection.
const localTTL = 60

// hosts is the static name -> addresses list. Names match exactly, as in
// /etc/hosts; a listed name is answered for A and AAAA only from the list.
type hosts map[string][]netip.Addr

// newHosts checks and canonicalises the configured list.
func newHosts(cfg map[string][]string) (hosts, error) {
	h := make(hosts, len(cfg))
	for name, addrs := range cfg {
		n, err := parseDomain(name)
		if err != nil {
			return nil, fieldError(fmt.Sprintf("hosts[%q]", name), err)
		}
		if len(addrs) == 0 {
			return nil, fieldError(fmt.Sprintf("hosts[%q]", name), errors.New("no addresses"))
		}
		for _, s := range addrs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fieldError(fmt.Sprintf("hosts[%q]", name), err)
			}
			h[n] = append(h[n], a.Unmap().WithZone(""))
		}
	}
	return h, nil
}

// reply answers req from addrs: the addresses of the asked family (both
// for ANY), NODATA for other types.
func (h hosts) reply(req *dns.Msg, addrs []netip.Addr) *dns.Msg {
	q := req.Question[0]
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	for _, a := range addrs {
		if rr := addrRR(q.Name, q.Qtype, a, localTTL); rr != nil {
			m.Answer = append(m.Answer, rr)
		}
	}
	return m
}

// addrRR returns an A or AAAA record for a if it answers qtype (A, AAAA or
// ANY), else nil.
func addrRR(name string, qtype uint16, a netip.Addr, ttl uint32) dns.RR {
	hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: ttl}
	switch {
	case a.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeA
		b := a.As4()
		return &dns.A{Hdr: hdr, A: b[:]}
	case a.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		hdr.Rrtype = dns.TypeAAAA
		b := a.As16()
		return &dns.AAAA{Hdr: hdr, AAAA: b[:]}
	}
	return nil
}
