package gateway

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
)

// Tables is the thin seam over one family's iptables: exactly the
// go-iptables methods gatewayd calls, plus save/restore, which go-iptables
// lacks. The real implementation is xtables; tests use a strict fake.
type Tables interface {
	Exists(table, chain string, rulespec ...string) (bool, error)
	Insert(table, chain string, pos int, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
	List(table, chain string) ([]string, error)
	ChainExists(table, chain string) (bool, error)
	ClearAndDeleteChain(table, chain string) error
	// Save returns `iptables-save -t table` output.
	Save(table string) (string, error)
	// Restore loads an iptables-restore payload in one transaction; with
	// noflush only the chains the payload declares are replaced.
	Restore(payload string, noflush bool) error
}

// xtablesWait is how long iptables calls wait for the xtables lock before
// failing (go-iptables' default of 0 waits forever behind a stuck lock).
const xtablesWait = 5

// xtablesTimeout bounds one save/restore run.
const xtablesTimeout = 30 * time.Second

// xtables is Tables backed by go-iptables and the matching -save/-restore
// binaries found in PATH (they follow the system's nft/legacy choice).
type xtables struct {
	*iptables.IPTables
	save, restore string
}

// NewTables returns the real Tables of family f.
func NewTables(f Family) (Tables, error) {
	proto, prefix := iptables.ProtocolIPv4, "iptables"
	if f == IPv6 {
		proto, prefix = iptables.ProtocolIPv6, "ip6tables"
	}
	ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Timeout(xtablesWait))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", prefix, err)
	}
	return &xtables{IPTables: ipt, save: prefix + "-save", restore: prefix + "-restore"}, nil
}

func (x *xtables) Save(table string) (string, error) {
	out, err := x.run(nil, x.save, "-t", table)
	if err != nil {
		return "", err
	}
	return out, nil
}

func (x *xtables) Restore(payload string, noflush bool) error {
	args := []string{fmt.Sprintf("--wait=%d", xtablesWait)}
	if noflush {
		args = append(args, "--noflush")
	}
	_, err := x.run(strings.NewReader(payload), x.restore, args...)
	return err
}

func (x *xtables) run(stdin *strings.Reader, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), xtablesTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(cmd.Environ(), "LC_ALL=C")
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
