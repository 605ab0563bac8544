package dns

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/miekg/dns"
)

// TestRecentRecordsQueries: answered, blocked and cached queries are
// recorded newest first with what answered them; blocked names are
// counted by name.
func TestRecentRecordsQueries(t *testing.T) {
	block := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(block, []byte("ads.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := &zone{}
	up.set("a.example. A", "a.example. 300 IN A 198.18.0.1")
	s := startServer(t, up.ServeDNS)
	h := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}, BlockLists: []string{block}})
	r := NewRecent(3)
	h.SetRecent(r)
	ask(t, h, "a.example.", dns.TypeA)
	ask(t, h, "x.ADS.example.", dns.TypeAAAA)
	ask(t, h, "a.example.", dns.TypeA)
	ask(t, h, "ads.example.", dns.TypeA)

	type row struct{ name, typ, source, rcode, answer, client string }
	var got []row
	for _, q := range r.Queries() {
		if q.Time.IsZero() || q.Latency <= 0 {
			t.Errorf("query %s: time %v, latency %v", q.Name, q.Time, q.Latency)
		}
		got = append(got, row{q.Name, q.Type, q.Source, q.Rcode, q.Answer, q.Client.String()})
	}
	c := testClient.Addr().String()
	want := []row{ // the ring holds 3: the first query is gone
		{"ads.example.", "A", srcBlocked, "NXDOMAIN", "", c},
		{"a.example.", "A", srcCache, "NOERROR", "A 198.18.0.1", c},
		{"x.ADS.example.", "AAAA", srcBlocked, "NXDOMAIN", "", c},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("recent queries\n%v\nwant\n%v", got, want)
	}
	wantBlocked := []BlockedName{{"ads.example.", 1}, {"x.ads.example.", 1}}
	if got := r.TopBlocked(5); !reflect.DeepEqual(got, wantBlocked) {
		t.Errorf("top blocked %v, want %v", got, wantBlocked)
	}
	ask(t, h, "x.ads.example.", dns.TypeA)
	if got := r.TopBlocked(1); !reflect.DeepEqual(got, []BlockedName{{"x.ads.example.", 2}}) {
		t.Errorf("top blocked name %v, want x.ads.example. twice", got)
	}

	// A reload's Handler records into the same log.
	h2 := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}})
	h2.Adopt(h)
	ask(t, h2, "b.example.", dns.TypeA)
	if q := r.Queries()[0]; q.Name != "b.example." || q.Source != srcUpstream {
		t.Errorf("after Adopt the newest query is %+v, want b.example. from upstream", q)
	}
}

// TestRecentTakesTheSlowPath: with a query log, CachedUDP declines, so a
// repeated query is recorded; without one it answers.
func TestRecentTakesTheSlowPath(t *testing.T) {
	c := newFastSetup(t)
	c.z.set("a.example. A", "a.example. 300 IN A 198.18.0.1")
	q := QueryInfo{Client: testClient, Transport: "udp"}
	query := packQuery(t, 1, "a.example.", dns.TypeA, 1232)
	if _, ok := c.h.HandleWire(context.Background(), query, q); !ok {
		t.Fatal("no answer")
	}
	if _, ok := c.h.CachedUDP(query, nil); !ok {
		t.Fatal("without a query log, the repeat was not answered on the fast path")
	}
	c.h.SetRecent(NewRecent(10))
	if _, ok := c.h.CachedUDP(query, nil); ok {
		t.Error("with a query log, CachedUDP answered (the query would not be recorded)")
	}
}

// TestRecentBlockedBound: past maxBlockedNames distinct names the rarest
// is forgotten; the map never grows beyond the bound.
func TestRecentBlockedBound(t *testing.T) {
	r := NewRecent(1)
	res := &result{msg: new(dns.Msg), src: srcBlocked}
	ask := func(name string) {
		req := new(dns.Msg).SetQuestion(name, dns.TypeA)
		r.record(req, QueryInfo{Client: testClient}, res, 1)
	}
	ask("often.example.")
	ask("often.example.")
	for i := range maxBlockedNames + 50 {
		ask(fmt.Sprintf("n%d.example.", i))
	}
	if n := len(r.blocked); n != maxBlockedNames {
		t.Errorf("%d blocked names kept, want %d", n, maxBlockedNames)
	}
	if top := r.TopBlocked(1); len(top) != 1 || top[0] != (BlockedName{"often.example.", 2}) {
		t.Errorf("top blocked %v, want often.example. twice (never the rarest)", top)
	}
	if got := len(r.Queries()); got != 1 {
		t.Errorf("ring of 1 holds %d queries", got)
	}
	var nilLog *Recent
	nilLog.record(new(dns.Msg), QueryInfo{}, res, 1) // records nothing, does not panic
}
