package gateway

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/gatewayd/gatewayd/internal/ipset/ipsettest"
	"golang.org/x/sys/unix"
)

// fakeTables is a strict in-memory mangle table of one family. It accepts
// only what real iptables accepts for gatewayd's use (declared chains,
// existing jump targets, deleting existing rules) and fails loudly
// otherwise. Restore is atomic like iptables-restore. A rule matching an
// ipset (-m set --match-set NAME) needs that set to exist in ipsets with
// the table's family; without ipsets no set exists.
type fakeTables struct {
	present  bool                // the table exists (iptables-nft creates it lazily)
	chains   map[string][]string // chain -> rule specs, without "-A chain"
	policies map[string]string   // builtin chain -> policy
	user     []string            // user chains in creation order
	restores int

	family Family            // the table's family (0: not checked against sets)
	ipsets *ipsettest.Kernel // the namespace's ipsets; nil: none exist
}

func newFakeTables() *fakeTables {
	return &fakeTables{chains: map[string][]string{}, policies: map[string]string{}}
}

// newFakeTablesWithSets is family f's table in a namespace whose ipsets k
// holds.
func newFakeTablesWithSets(f Family, k *ipsettest.Kernel) *fakeTables {
	t := newFakeTables()
	t.family, t.ipsets = f, k
	return t
}

func (f *fakeTables) clone() *fakeTables {
	c := &fakeTables{present: f.present, chains: map[string][]string{}, policies: maps.Clone(f.policies), user: slices.Clone(f.user),
		family: f.family, ipsets: f.ipsets}
	for k, v := range f.chains {
		c.chains[k] = slices.Clone(v)
	}
	return c
}

func (f *fakeTables) ensure() {
	if f.present {
		return
	}
	f.present = true
	for _, ch := range builtinMangle {
		f.chains[ch] = nil
		f.policies[ch] = "ACCEPT"
	}
}

func checkTable(table string) error {
	if table != "mangle" {
		return fmt.Errorf("fake: unexpected table %q", table)
	}
	return nil
}

func (f *fakeTables) chainOK(chain string) error {
	if _, ok := f.chains[chain]; !ok {
		return fmt.Errorf("fake: chain %q does not exist", chain)
	}
	return nil
}

// setOK checks that a -m set match names an existing set of the table's
// family, as iptables does.
func (f *fakeTables) setOK(spec string) error {
	fs := strings.Fields(spec)
	for i := 0; i+1 < len(fs); i++ {
		if fs[i] != "--match-set" {
			continue
		}
		name := fs[i+1]
		if f.ipsets == nil {
			return fmt.Errorf("fake: Set %s doesn't exist", name)
		}
		r, err := f.ipsets.IpsetList(name)
		if err != nil {
			return fmt.Errorf("fake: Set %s doesn't exist: %w", name, err)
		}
		af := map[Family]uint8{IPv4: unix.AF_INET, IPv6: unix.AF_INET6}[f.family]
		if f.family != 0 && r.Family != af {
			return fmt.Errorf("fake: the protocol family of set %s is not applicable to %s", name, f.family)
		}
	}
	return nil
}

// referencesSet reports whether a rule matches the named set: the kernel
// then refuses to destroy it (ipsettest.Kernel.Referenced).
func (f *fakeTables) referencesSet(name string) bool {
	for _, rules := range f.chains {
		for _, r := range rules {
			fs := strings.Fields(r)
			for i := 0; i+1 < len(fs); i++ {
				if fs[i] == "--match-set" && fs[i+1] == name {
					return true
				}
			}
		}
	}
	return false
}

// targetOK checks that a -j/-g target naming a user chain (gatewayd's
// GWD_ chains, or a lower-case foreign one) exists, as iptables does.
func (f *fakeTables) targetOK(spec string) error {
	fs := strings.Fields(spec)
	for i := 0; i+1 < len(fs); i++ {
		t := fs[i+1]
		if (fs[i] == "-j" || fs[i] == "-g") && (strings.HasPrefix(t, ChainPrefix) || strings.ToUpper(t) != t) {
			return f.chainOK(t)
		}
	}
	return nil
}

func (f *fakeTables) Exists(table, chain string, spec ...string) (bool, error) {
	if err := checkTable(table); err != nil {
		return false, err
	}
	return slices.Contains(f.chains[chain], strings.Join(spec, " ")), nil
}

func (f *fakeTables) Insert(table, chain string, pos int, spec ...string) error {
	if err := checkTable(table); err != nil {
		return err
	}
	f.ensure()
	s := strings.Join(spec, " ")
	if err := errors.Join(f.chainOK(chain), f.targetOK(s), f.setOK(s)); err != nil {
		return err
	}
	if pos < 1 || pos > len(f.chains[chain])+1 {
		return fmt.Errorf("fake: index of insertion too big: %d", pos)
	}
	f.chains[chain] = slices.Insert(f.chains[chain], pos-1, s)
	return nil
}

func (f *fakeTables) Delete(table, chain string, spec ...string) error {
	if err := checkTable(table); err != nil {
		return err
	}
	i := slices.Index(f.chains[chain], strings.Join(spec, " "))
	if i < 0 {
		return fmt.Errorf("fake: exitcode 1: rule %q not in %s", strings.Join(spec, " "), chain)
	}
	f.chains[chain] = slices.Delete(f.chains[chain], i, i+1)
	return nil
}

func (f *fakeTables) List(table, chain string) ([]string, error) {
	if err := checkTable(table); err != nil {
		return nil, err
	}
	if !f.present && slices.Contains(builtinMangle, chain) {
		return []string{"-P " + chain + " ACCEPT"}, nil // as iptables-nft lists an absent table
	}
	if err := f.chainOK(chain); err != nil {
		return nil, err
	}
	var out []string
	if p, ok := f.policies[chain]; ok {
		out = append(out, "-P "+chain+" "+p)
	} else {
		out = append(out, "-N "+chain)
	}
	for _, r := range f.chains[chain] {
		out = append(out, "-A "+chain+" "+r)
	}
	return out, nil
}

func (f *fakeTables) ChainExists(table, chain string) (bool, error) {
	if err := checkTable(table); err != nil {
		return false, err
	}
	_, ok := f.chains[chain]
	return ok, nil
}

func (f *fakeTables) ClearAndDeleteChain(table, chain string) error {
	if err := checkTable(table); err != nil {
		return err
	}
	if _, ok := f.chains[chain]; !ok {
		return nil
	}
	if f.policies[chain] != "" {
		return fmt.Errorf("fake: cannot delete built-in chain %s", chain)
	}
	for ch, rules := range f.chains {
		for _, r := range rules {
			if slices.Contains(strings.Fields(r), chain) {
				return fmt.Errorf("fake: chain %s is referenced by %s: %s", chain, ch, r)
			}
		}
	}
	delete(f.chains, chain)
	f.user = slices.DeleteFunc(f.user, func(s string) bool { return s == chain })
	return nil
}

func (f *fakeTables) Save(table string) (string, error) {
	if err := checkTable(table); err != nil {
		return "", err
	}
	if !f.present {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("# Generated by fake iptables-save\n*mangle\n")
	for _, ch := range builtinMangle {
		fmt.Fprintf(&b, ":%s %s [7:420]\n", ch, f.policies[ch])
	}
	for _, ch := range f.user {
		fmt.Fprintf(&b, ":%s - [0:0]\n", ch)
	}
	for _, ch := range append(slices.Clone(builtinMangle), f.user...) {
		for _, r := range f.chains[ch] {
			fmt.Fprintf(&b, "-A %s %s\n", ch, r)
		}
	}
	b.WriteString("COMMIT\n# Completed\n")
	return b.String(), nil
}

// Restore parses an iptables-restore payload into a copy and commits it
// only when every line is valid.
func (f *fakeTables) Restore(payload string, noflush bool) error {
	n := f.clone()
	if !noflush {
		n = newFakeTablesWithSets(f.family, f.ipsets)
	}
	n.ensure()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(payload), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || lines[0] != "*mangle" || lines[len(lines)-1] != "COMMIT" {
		return fmt.Errorf("fake: payload must be *mangle ... COMMIT, got %q", payload)
	}
	for i, line := range lines[1 : len(lines)-1] {
		if err := n.restoreLine(line); err != nil {
			return fmt.Errorf("fake: line %d %q: %w", i+2, line, err)
		}
	}
	n.restores = f.restores + 1
	*f = *n
	return nil
}

func (f *fakeTables) restoreLine(line string) error {
	switch {
	case line == "" || strings.HasPrefix(line, "#"):
		return nil
	case strings.HasPrefix(line, ":"):
		fs := strings.Fields(line[1:])
		if len(fs) < 2 {
			return errors.New("bad chain line")
		}
		ch := fs[0]
		if _, builtin := f.policies[ch]; builtin {
			f.policies[ch] = fs[1]
		} else if !slices.Contains(f.user, ch) {
			f.user = append(f.user, ch)
		}
		f.chains[ch] = nil
		return nil
	case strings.HasPrefix(line, "-A "):
		fs := strings.SplitN(line, " ", 3)
		if len(fs) < 3 {
			return errors.New("empty rule")
		}
		if err := errors.Join(f.chainOK(fs[1]), f.targetOK(fs[2]), f.setOK(fs[2])); err != nil {
			return err
		}
		f.chains[fs[1]] = append(f.chains[fs[1]], fs[2])
		return nil
	case strings.HasPrefix(line, "-D "):
		fs := strings.SplitN(line, " ", 3)
		if len(fs) < 3 {
			return errors.New("empty rule")
		}
		if err := f.chainOK(fs[1]); err != nil {
			return err
		}
		return f.Delete("mangle", fs[1], strings.Fields(fs[2])...)
	case strings.HasPrefix(line, "-F "):
		ch := strings.TrimSpace(line[3:])
		if err := f.chainOK(ch); err != nil {
			return err
		}
		f.chains[ch] = nil
		return nil
	case strings.HasPrefix(line, "-X "):
		ch := strings.TrimSpace(line[3:])
		if err := f.chainOK(ch); err != nil {
			return err
		}
		if len(f.chains[ch]) > 0 {
			return fmt.Errorf("fake: chain %s is not empty", ch)
		}
		return f.ClearAndDeleteChain("mangle", ch)
	}
	return errors.New("unsupported line")
}
