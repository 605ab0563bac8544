package dns

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func buildBlockList(t testing.TB, text string) (*blockList, int) {
	t.Helper()
	var b blockBuilder
	if err := b.add(strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	inv := b.invalid
	return b.build(), inv
}

func TestBlockListParse(t *testing.T) {
	l, invalid := buildBlockList(t, `# hosts format
127.0.0.1 localhost
::1 ip6-localhost ip6-loopback
0.0.0.0 0.0.0.0
0.0.0.0 ads.example tracker.example   # two names
0.0.0.0 ADS.example.
:: v6.example
# domain per line
plain.example
  spaced.example
*.wild.example
||adblock.example^
! adblock comment
sub.ads.example
bad name here
0.0.0.0 bad..name
-
`)
	var got []string
	for i := range l.len() {
		got = append(got, reverse(l.at(i)))
	}
	slices.Sort(got)
	want := []string{"-", "adblock.example", "ads.example", "plain.example", "spaced.example", "tracker.example", "v6.example", "wild.example"}
	if !slices.Equal(got, want) {
		t.Errorf("names %v\nwant  %v", got, want)
	}
	// "bad name here", "bad..name"; "-" is a valid (if odd) name.
	if invalid != 2 {
		t.Errorf("invalid lines %d, want 2", invalid)
	}
}

func TestBlockListMatch(t *testing.T) {
	l, _ := buildBlockList(t, "ads.example\nexample.net\nx.y.example.org\nzip\n")
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"ads.example.", true},
		{"a.b.ads.example.", true},
		{"ads.example", true},
		{"xads.example.", false},
		{"example.", false},
		{"example.net.", true},
		{"www.example.net.", true},
		{"example.network.", false},
		{"y.example.org.", false},
		{"x.y.example.org.", true},
		{"w.x.y.example.org.", true},
		{"file.zip.", true},
		{"zip.example.", false},
		{"ads\\.example.", false},    // one label "ads.example"
		{"a\\.b.ads.example.", true}, // labels "a.b", "ads", "example"
		{".", false},
		{"", false},
	} {
		if got := l.match(canonical(tc.name)); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
	var empty *blockList
	if empty.match("ads.example.") {
		t.Error("nil list matched")
	}
}

// synthNames returns n distinct names shaped like block list entries
// (tracker subdomains of a few ten thousand domains, 20-30 bytes).
func synthNames(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	word := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = letters[r.IntN(len(letters))]
		}
		return string(b)
	}
	tlds := []string{"com", "net", "org", "io", "de", "info", "xyz"}
	seen := make(map[string]bool, n)
	out := make([]string, 0, n)
	for len(out) < n {
		name := fmt.Sprintf("%s.%s%d.%s", word(4+r.IntN(8)), word(6+r.IntN(6)), r.IntN(50), tlds[r.IntN(len(tlds))])
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// blockListMemoryLimit is the budget for 300k names: a home router has
// 128-512 MB of RAM.
const blockListMemoryLimit = 32 << 20

func TestBlockList300k(t *testing.T) {
	const n = 300_000
	names := synthNames(n)
	path := filepath.Join(t.TempDir(), "hosts")
	var sb strings.Builder
	textLen := 0
	for _, nm := range names {
		sb.WriteString("0.0.0.0 " + nm + "\n")
		textLen += len(nm)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	sb = strings.Builder{}

	before := heapInUse()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocBefore := ms.TotalAlloc
	var b blockBuilder
	if err := b.addFile(path); err != nil {
		t.Fatal(err)
	}
	l := b.build()
	runtime.ReadMemStats(&ms)
	buildAlloc := ms.TotalAlloc - allocBefore
	after := heapInUse()
	used := int64(after) - int64(before)

	// Compare with the obvious representation.
	m := make(map[string]struct{}, n)
	for _, nm := range names {
		m[strings.Clone(nm)] = struct{}{}
	}
	mapUsed := int64(heapInUse()) - int64(after)

	t.Logf("%d names (%d bytes of names): blockList holds %.1f MiB (%.1f bytes/name), building it allocated %.1f MiB in all; a map[string]struct{} of them holds %.1f MiB",
		l.len(), textLen, float64(used)/(1<<20), float64(used)/float64(l.len()), float64(buildAlloc)/(1<<20), float64(mapUsed)/(1<<20))
	if l.len() != n {
		t.Errorf("%d names stored, want %d", l.len(), n)
	}
	if used > blockListMemoryLimit {
		t.Errorf("blockList of %d names uses %d bytes, budget %d", n, used, blockListMemoryLimit)
	}
	for i := 0; i < n; i += 997 {
		if !l.match(canonical("x." + names[i])) {
			t.Fatalf("subdomain of %q not blocked", names[i])
		}
		if l.match(canonical(names[i] + ".other")) {
			t.Fatalf("%q.other blocked", names[i])
		}
	}
	runtime.KeepAlive(m)
	runtime.KeepAlive(l)
}

func TestBlockListDropsCoveredSubdomains(t *testing.T) {
	l, _ := buildBlockList(t, "a.ads.example\nads.example\nb.c.ads.example\nads.example-x\nads.example\n")
	if l.len() != 2 { // ads.example, ads.example-x
		t.Errorf("%d names kept, want 2", l.len())
	}
}

func TestHandlerBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "block.txt")
	if err := os.WriteFile(path, []byte("0.0.0.0 ads.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := &zone{}
	s := startServer(t, up.ServeDNS)
	for _, tc := range []struct {
		mode  string
		qtype uint16
		rcode int
		addrs []string
	}{
		{"", dns.TypeA, dns.RcodeNameError, nil},
		{BlockNXDomain, dns.TypeMX, dns.RcodeNameError, nil},
		{BlockNull, dns.TypeA, dns.RcodeSuccess, []string{"0.0.0.0"}},
		{BlockNull, dns.TypeAAAA, dns.RcodeSuccess, []string{"::"}},
		{BlockNull, dns.TypeMX, dns.RcodeSuccess, nil},
	} {
		h := newHandler(t, Config{Upstreams: []string{"udp://" + s.addr}, BlockLists: []string{path}, BlockMode: tc.mode})
		r := ask(t, h, "x.Ads.example.", tc.qtype)
		wantRcode(t, r, tc.rcode)
		if got := addrs(r); !slices.Equal(got, tc.addrs) {
			t.Errorf("mode %q %s: %v, want %v", tc.mode, dns.TypeToString[tc.qtype], got, tc.addrs)
		}
		if st := h.Stats(); st.Blocked != 1 {
			t.Errorf("blocked count %d", st.Blocked)
		}
		if _, ok := h.Memory().Lookup(netip0); ok {
			t.Error("a blocked answer's 0.0.0.0 was remembered")
		}
	}
	if s.queries.Load() != 0 {
		t.Errorf("blocked names went upstream %d times", s.queries.Load())
	}
}

func BenchmarkBlockListMatch(b *testing.B) {
	names := synthNames(300_000)
	var bb blockBuilder
	if err := bb.add(strings.NewReader(strings.Join(names, "\n"))); err != nil {
		b.Fatal(err)
	}
	l := bb.build()
	queries := make([]string, 1024)
	for i := range queries {
		if i%2 == 0 {
			queries[i] = canonical("cdn.img." + names[i*7])
		} else {
			queries[i] = canonical(fmt.Sprintf("www.site%d.example.com", i))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.match(queries[i%len(queries)])
	}
}

func BenchmarkBlockListBuild300k(b *testing.B) {
	text := strings.Join(synthNames(300_000), "\n")
	b.ReportAllocs()
	for b.Loop() {
		var bb blockBuilder
		if err := bb.add(strings.NewReader(text)); err != nil {
			b.Fatal(err)
		}
		bb.build()
	}
}
