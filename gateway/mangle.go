package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// mangleTable owns gatewayd's part of one family's mangle table.
//
// In appliance mode Set snapshots the table once (the rules gatewayd did not
// write, "kept aside" in a state file so they survive a crash), then
// replaces the whole table with the rendered one; Cleanup puts the snapshot
// back. In shared mode Set replaces only the GWD_ chains (--noflush) and adds
// the PREROUTING jumps; Cleanup removes those. Both are safe to repeat, and
// Cleanup is also what start-up runs first to remove a crashed run's rules.
type mangleTable struct {
	Family   Family
	Tables   Tables
	StateDir string
	Log      *slog.Logger
}

// keptFile is where the appliance-mode snapshot of foreign rules lives.
func (m *mangleTable) keptFile() string {
	return filepath.Join(m.StateDir, fmt.Sprintf("mangle-v%d.rules", m.Family))
}

// Set installs the rendered rules of cfg.
func (m *mangleTable) Set(cfg *Spec, env Env) error {
	if cfg.Mangle.Mode == ModeShared {
		return m.setShared(cfg, env)
	}
	return m.setAppliance(cfg, env)
}

func (m *mangleTable) setAppliance(cfg *Spec, env Env) error {
	if _, err := os.Stat(m.keptFile()); errors.Is(err, os.ErrNotExist) {
		if err := m.keepAside(); err != nil {
			return err
		}
	}
	if err := m.Tables.Restore(renderAppliance(cfg, m.Family, env), false); err != nil {
		return fmt.Errorf("installing %s mangle table: %w", m.Family, err)
	}
	return m.verify(cfg)
}

// keepAside snapshots the current table minus anything of gatewayd's and
// writes it to the state file before gatewayd replaces the table.
func (m *mangleTable) keepAside() error {
	saved, err := m.Tables.Save("mangle")
	if err != nil {
		return fmt.Errorf("saving %s mangle table: %w", m.Family, err)
	}
	kept, foreign := foreignRules(saved)
	for _, r := range foreign {
		m.Log.Warn("mangle rule not written by gatewayd: kept aside until exit (put it in mangle.extra_rules or use mangle.mode = \"shared\")",
			"family", m.Family.String(), "rule", r)
	}
	if err := os.MkdirAll(m.StateDir, 0o700); err != nil {
		return fmt.Errorf("creating state dir: %w", err)
	}
	tmp := m.keptFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(kept), 0o600); err != nil {
		return fmt.Errorf("writing kept-aside mangle rules: %w", err)
	}
	if err := os.Rename(tmp, m.keptFile()); err != nil {
		return fmt.Errorf("writing kept-aside mangle rules: %w", err)
	}
	return nil
}

func (m *mangleTable) setShared(cfg *Spec, env Env) error {
	if err := m.Tables.Restore(renderShared(cfg, m.Family, env), true); err != nil {
		return fmt.Errorf("installing %s mangle chains: %w", m.Family, err)
	}
	pos := map[string]int{}
	for _, j := range jumps(cfg) {
		pos[j.chain]++
		ok, err := m.Tables.Exists("mangle", j.chain, j.spec...)
		if err != nil {
			return fmt.Errorf("checking %s jump %v: %w", m.Family, j.spec, err)
		}
		if ok {
			continue
		}
		if err := m.Tables.Insert("mangle", j.chain, pos[j.chain], j.spec...); err != nil {
			return fmt.Errorf("adding %s jump %s %v: %w", m.Family, j.chain, j.spec, err)
		}
	}
	return m.verify(cfg)
}

// verify re-checks that what was applied is in place: every jump and the
// full chain (a failed or raced apply shows here rather than as a silently
// unintercepted LAN).
func (m *mangleTable) verify(cfg *Spec) error {
	for _, j := range jumps(cfg) {
		ok, err := m.Tables.Exists("mangle", j.chain, j.spec...)
		if err != nil {
			return fmt.Errorf("verifying %s jump %s %v: %w", m.Family, j.chain, j.spec, err)
		}
		if !ok {
			return fmt.Errorf("verifying %s mangle rules: jump %s %v missing after apply", m.Family, j.chain, j.spec)
		}
	}
	for _, ch := range ownChains {
		ok, err := m.Tables.ChainExists("mangle", ch)
		if err != nil {
			return fmt.Errorf("verifying %s chain %s: %w", m.Family, ch, err)
		}
		if !ok {
			return fmt.Errorf("verifying %s mangle rules: chain %s missing after apply", m.Family, ch)
		}
	}
	return nil
}

// Cleanup removes everything gatewayd installed in this family's mangle
// table and puts back what appliance mode kept aside. Safe when nothing is
// there.
func (m *mangleTable) Cleanup() error {
	kept, err := os.ReadFile(m.keptFile())
	switch {
	case err == nil:
		if err := m.Tables.Restore(restorable(string(kept)), false); err != nil {
			return fmt.Errorf("restoring kept-aside %s mangle table: %w", m.Family, err)
		}
		if err := os.Remove(m.keptFile()); err != nil {
			return fmt.Errorf("removing %s: %w", m.keptFile(), err)
		}
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("reading kept-aside mangle rules: %w", err)
	}
	return m.removeOwn()
}

// removeTries bounds how often removeOwn reads the table again after its
// transaction failed because someone changed the table meanwhile.
const removeTries = 5

// removeOwn deletes every jump into a GWD_ chain, then the chains, in one
// iptables-restore transaction: with separate commands, a running
// gatewayd's keeper (which reacts to each of them within milliseconds)
// could put a jump back before its chain is deleted. The transaction
// changes nothing if the table changed since it was read (a rule to delete
// is gone); the table is then read again.
func (m *mangleTable) removeOwn() error {
	var err error
	for range removeTries {
		saved, serr := m.Tables.Save("mangle")
		if serr != nil {
			return fmt.Errorf("reading %s mangle table: %w", m.Family, serr)
		}
		payload := removalPayload(saved)
		if payload == "" {
			return nil
		}
		if err = m.Tables.Restore(payload, true); err == nil {
			return nil
		}
	}
	return fmt.Errorf("removing %s mangle rules: %w", m.Family, err)
}

// removalPayload is the iptables-restore --noflush payload that removes
// gatewayd's lines from an iptables-save dump: the jumps into GWD_ chains
// from other chains, then the GWD_ chains (flushed first: they jump to
// each other). "" when there is nothing of gatewayd's.
func removalPayload(saved string) string {
	var dels, chains []string
	for _, line := range strings.Split(saved, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ":"+ChainPrefix):
			chains = append(chains, strings.Fields(line[1:])[0])
		case strings.HasPrefix(line, "-A ") && !strings.HasPrefix(line, "-A "+ChainPrefix) && jumpsToOwn(line):
			dels = append(dels, "-D "+strings.TrimPrefix(line, "-A "))
		}
	}
	if len(dels)+len(chains) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*mangle\n")
	for _, d := range dels {
		b.WriteString(d + "\n")
	}
	for _, ch := range chains {
		b.WriteString("-F " + ch + "\n")
	}
	for _, ch := range chains {
		b.WriteString("-X " + ch + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}
