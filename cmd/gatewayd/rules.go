package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/vishvananda/netlink"
)

// cmdRules prints exactly what `run` would install in this network
// namespace now: the iptables-restore payload of each family and the ip
// rules and routes. It reads the LAN subnets from the kernel and changes
// nothing.
func cmdRules(cfg *gateway.Config, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var env gateway.Env
	if h, err := netlink.NewHandle(); err != nil {
		log.Warn("cannot read LAN subnets; printing without them", "err", err)
	} else {
		defer h.Close()
		if env, err = gateway.DeriveEnv(h, cfg, log); err != nil {
			log.Warn("cannot read LAN subnets; printing without them", "err", err)
		}
	}
	fmt.Fprint(stdout, gateway.RenderAll(cfg, env))
	return nil
}
