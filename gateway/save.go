package gateway

import (
	"slices"
	"strings"
)

// emptyMangle is the mangle table with nothing in it; restoring it is how a
// table that did not exist before gatewayd started is put back.
func emptyMangle() string {
	var b strings.Builder
	b.WriteString("*mangle\n")
	for _, ch := range builtinMangle {
		b.WriteString(declare(ch, "ACCEPT") + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// jumpsToOwn reports whether an iptables -S / -save rule line sends packets
// to one of gatewayd's chains.
func jumpsToOwn(rule string) bool {
	f := strings.Fields(rule)
	for i := 0; i+1 < len(f); i++ {
		if (f[i] == "-j" || f[i] == "-g") && strings.HasPrefix(f[i+1], ChainPrefix) {
			return true
		}
	}
	return false
}

// isOwnLine reports whether a save line belongs to gatewayd: a GWD_ chain
// declaration, a rule in a GWD_ chain, or a jump into one.
func isOwnLine(line string) bool {
	return strings.HasPrefix(line, ":"+ChainPrefix) ||
		strings.HasPrefix(line, "-A "+ChainPrefix) ||
		(strings.HasPrefix(line, "-A ") && jumpsToOwn(line))
}

// foreignRules splits an `iptables-save -t mangle` dump: kept is the dump
// with gatewayd's lines removed (ready for iptables-restore), foreign lists
// what someone else put there: rules, user chains and non-ACCEPT policies.
func foreignRules(saved string) (kept string, foreign []string) {
	var b strings.Builder
	for _, line := range strings.Split(saved, "\n") {
		if isOwnLine(line) {
			continue
		}
		b.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "-A "):
			foreign = append(foreign, line)
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 && (!slices.Contains(builtinMangle, f[0]) || f[1] != "ACCEPT") {
				foreign = append(foreign, line)
			}
		}
	}
	return restorable(b.String()), foreign
}

// restorable returns a payload that iptables-restore accepts: the dump
// itself, or an empty table when the dump had no mangle table (a table that
// did not exist yet, as iptables-nft shows a fresh namespace).
func restorable(dump string) string {
	if !strings.Contains(dump, "*mangle") {
		return emptyMangle()
	}
	return strings.TrimRight(dump, "\n") + "\n"
}
