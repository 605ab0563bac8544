package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// blockList is a set of blocked domains; a name is blocked if it or one of
// its parent domains is in the set. Public block lists run to hundreds of
// thousands of names, so the set is kept compact: every name is stored
// byte-reversed ("ads.example" as "elpmaxe.sda") in one string, sorted, and
// found by binary search. Four bytes of offset per name plus the name
// itself, instead of a map's per-entry headers and buckets.
//
// Reversal turns "a parent is blocked" into "a prefix ending at a label
// boundary is in the set", and it keeps a domain and its subdomains
// adjacent, which is how build drops the subdomains of blocked domains.
type blockList struct {
	blob string
	offs []uint32 // name i is blob[offs[i]:offs[i+1]]; len(offs) = names+1
}

// maxLineLen bounds one line of a block list file; real lists have short
// lines, and a longer one means the file is not a block list.
const maxLineLen = 64 << 10

// hostsBoilerplate are the names of a stock hosts file, which hosts-format
// block lists carry along. Blocking them would break the local machine.
var hostsBoilerplate = map[string]bool{
	"localhost": true, "localhost.localdomain": true, "local": true,
	"broadcasthost": true, "ip6-localhost": true, "ip6-loopback": true,
	"ip6-localnet": true, "ip6-mcastprefix": true, "ip6-allnodes": true,
	"ip6-allrouters": true, "ip6-allhosts": true, "0.0.0.0": true,
}

// blockBuilder collects names from block list files. Lines are parsed in
// place and names appended byte-reversed to one arena, so building from
// hundreds of thousands of lines allocates little besides the arena.
type blockBuilder struct {
	arena   []byte   // reversed names, back to back
	starts  []uint32 // start of each name in arena
	invalid int      // lines neither blank, comment, nor holding a usable name
}

// addFile reads one block list file.
func (b *blockBuilder) addFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening block list: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 && fi.Size() < maxArenaHint {
		// The names are shorter than the file: growing the arena once
		// spares the copies of doubling it line by line.
		b.arena = slices.Grow(b.arena, int(fi.Size()))
	}
	if err := b.add(f); err != nil {
		return fmt.Errorf("reading block list %s: %w", path, err)
	}
	return nil
}

// add reads block list lines: hosts format ("0.0.0.0 ads.example", every
// name after the address counts), one domain per line ("ads.example"), or
// the adblock domain form ("||ads.example^"). '#' and '!' start comments;
// a leading "*." or "." is dropped (the name's subdomains are blocked with
// it anyway).
func (b *blockBuilder) add(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	for sc.Scan() {
		line := sc.Bytes()
		if i := bytes.IndexAny(line, "#!"); i >= 0 {
			line = line[:i]
		}
		first, rest := nextField(line)
		if first == nil {
			continue
		}
		if isAddr(first) {
			for n, more := nextField(rest); n != nil; n, more = nextField(more) {
				b.addName(n)
			}
			continue
		}
		if n, _ := nextField(rest); n != nil {
			b.invalid++
			continue
		}
		b.addName(first)
	}
	return sc.Err()
}

// nextField returns the first whitespace-separated field of s (nil if
// none) and what follows it.
func nextField(s []byte) (field, rest []byte) {
	s = bytes.TrimLeft(s, " \t\r\v\f")
	if len(s) == 0 {
		return nil, nil
	}
	if i := bytes.IndexAny(s, " \t\r\v\f"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, nil
}

// isAddr reports whether f is an IP address: the first field of a hosts
// line. The usual block list addresses are recognised without allocating.
func isAddr(f []byte) bool {
	switch string(f) {
	case "0.0.0.0", "127.0.0.1", "::", "::1":
		return true
	}
	if bytes.IndexFunc(f, func(r rune) bool { return r != '.' && r != ':' && !isHex(r) }) >= 0 {
		return false
	}
	_, err := netip.ParseAddr(string(f))
	return err == nil
}

func isHex(r rune) bool { return '0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F' }

// addName cleans one block list entry (in place) and stores it.
func (b *blockBuilder) addName(n []byte) {
	n = bytes.TrimSuffix(bytes.TrimPrefix(n, []byte("||")), []byte("^"))
	n = bytes.TrimPrefix(n, []byte("*."))
	n = bytes.Trim(n, ".")
	for i, c := range n {
		if 'A' <= c && c <= 'Z' {
			n[i] = c + 'a' - 'A'
		}
	}
	if len(n) == 0 || hostsBoilerplate[string(n)] {
		return
	}
	if !validName(n) {
		b.invalid++
		return
	}
	b.starts = append(b.starts, uint32(len(b.arena)))
	for i := len(n) - 1; i >= 0; i-- {
		b.arena = append(b.arena, n[i])
	}
}

// maxArenaHint bounds the arena space reserved up front from a file's
// size, so that a huge unrelated file is not reserved for in one piece.
const maxArenaHint = 256 << 20

// reverse returns s byte-reversed.
func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// build returns the set of names added so far and resets b. Duplicates and
// names under another blocked name are dropped.
func (b *blockBuilder) build() *blockList {
	n := len(b.starts)
	b.starts = append(b.starts, uint32(len(b.arena)))
	name := func(i uint32) []byte { return b.arena[b.starts[i]:b.starts[i+1]] }
	idx := make([]uint32, n)
	for i := range idx {
		idx[i] = uint32(i)
	}
	slices.SortFunc(idx, func(x, y uint32) int { return bytes.Compare(name(x), name(y)) })

	// In sorted order, every stored parent of a name comes before it, and
	// every name in between has the parent as a (byte) prefix too. So a
	// stack of the kept names that are prefixes of the current one holds
	// all its kept parents.
	kept := idx[:0]
	var stack [][]byte
	total := 0
	for _, i := range idx {
		cur := name(i)
		for len(stack) > 0 && !bytes.HasPrefix(cur, stack[len(stack)-1]) {
			stack = stack[:len(stack)-1]
		}
		if coveredBy(stack, cur) {
			continue
		}
		stack = append(stack, cur)
		kept = append(kept, i)
		total += len(cur)
	}
	var sb strings.Builder
	sb.Grow(total)
	offs := make([]uint32, 0, len(kept)+1)
	for _, i := range kept {
		offs = append(offs, uint32(sb.Len()))
		sb.Write(name(i))
	}
	offs = append(offs, uint32(sb.Len()))
	*b = blockBuilder{invalid: b.invalid}
	return &blockList{blob: sb.String(), offs: offs}
}

// covers reports whether the reversed name p is cur itself or a parent of
// it.
func covers(p, cur []byte) bool {
	return bytes.HasPrefix(cur, p) && (len(cur) == len(p) || cur[len(p)] == '.')
}

// coveredBy reports whether a name on the stack covers cur.
func coveredBy(stack [][]byte, cur []byte) bool {
	for _, p := range stack {
		if covers(p, cur) {
			return true
		}
	}
	return false
}

// len returns the number of names stored.
func (l *blockList) len() int {
	if l == nil || len(l.offs) == 0 {
		return 0
	}
	return len(l.offs) - 1
}

func (l *blockList) at(i int) string { return l.blob[l.offs[i]:l.offs[i+1]] }

// has reports whether the reversed name r is stored.
func (l *blockList) has(r string) bool {
	n := l.len()
	i, j := 0, n
	for i < j {
		h := int(uint(i+j) >> 1)
		if l.at(h) < r {
			i = h + 1
		} else {
			j = h
		}
	}
	return i < n && l.at(i) == r
}

// match reports whether the canonical name or one of its parents is
// blocked.
func (l *blockList) match(name string) bool {
	if l.len() == 0 {
		return false
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return false
	}
	r := reverse(name)
	// The suffix of name starting at label offset off is the prefix of r
	// of length len(name)-off.
	return suffixes(name, func(s string) bool { return l.has(r[:len(s)]) })
}
