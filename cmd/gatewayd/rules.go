package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/gateway"
	"github.com/vishvananda/netlink"
)

// cmdRules prints exactly what `run` would install in this network
// namespace now: the iptables-restore payload of each family and the ip
// rules and routes. It reads the LAN subnets from the kernel and changes
// nothing.
func cmdRules(cfg *config.Config, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	spec, err := cfg.Gateway()
	if err != nil {
		return err
	}
	var env gateway.Env
	if h, err := netlink.NewHandle(); err != nil {
		log.Warn("cannot read LAN subnets; printing without them", "err", err)
	} else {
		defer h.Close()
		if env, err = gateway.DeriveEnv(h, spec, log); err != nil {
			log.Warn("cannot read LAN subnets; printing without them", "err", err)
		}
	}
	table, err := cfg.RouteTable()
	if err != nil {
		return err
	}
	env.FastPath = true // run sets the fast path up wherever the kernel has ipsets
	fmt.Fprint(stdout, gateway.RenderAll(spec, env))
	fmt.Fprintf(stdout, "\n# routing rules, first match wins\n%s", table)
	fmt.Fprintf(stdout, "\n# kernel fast path: permanent entries of %s / %s\n", gateway.DirectSet4, gateway.DirectSet6)
	for _, p := range spec.FastPathEntries() {
		fmt.Fprintln(stdout, p)
	}
	return nil
}
