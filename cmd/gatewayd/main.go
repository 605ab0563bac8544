// Command gatewayd turns a Linux router into a transparent TCP/UDP
// gateway: it intercepts the flows LAN clients send through the router
// with TPROXY, hijacks their DNS into its own resolver, and relays each
// flow to where the rules send it. This package is the daemon's one
// owner of the current config: it maps it to the other packages' specs
// (package config), runs the lifecycle (lifecycle.go: listen, install,
// serve, remove, shut down) and applies reloads.
//
// Usage:
//
//	gatewayd [run] [-c FILE]   run (default config /etc/gatewayd/gateway.toml)
//	gatewayd check -c FILE     validate the config; touches nothing
//	gatewayd rules -c FILE     print what run would install
//	gatewayd reload -c FILE    validate FILE and make the running gatewayd apply it (control socket)
//	gatewayd cleanup [--force] -c FILE  remove what a previous run left (refused while one runs)
//	gatewayd version           print the version
//
// Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 invalid config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gatewayd/gatewayd/config"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes a script can rely on.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 3
)

const defaultConfig = "/etc/gatewayd/gateway.toml"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "status" { // its own flags: status.go
		return runStatus(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("gatewayd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", defaultConfig, "config file")
	force := new(bool)
	if cmd == "cleanup" {
		force = fs.Bool("force", false, "clean up although a process holds the state lock (a stale lock)")
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gatewayd %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return exitUsage
	}
	if cmd == "version" {
		fmt.Fprintf(stdout, "gatewayd %s\n", version)
		return exitOK
	}
	commands := map[string]func(*config.Config, io.Writer, io.Writer) error{
		"run": cmdRun, "check": cmdCheck, "rules": cmdRules, "reload": cmdReload,
		"cleanup": func(cfg *config.Config, stdout, stderr io.Writer) error {
			return cmdCleanup(cfg, *force, stdout, stderr)
		},
		"watchdog": cmdWatchdog, // hidden: started by run (watchdog.go)
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "gatewayd: unknown command %q (want run, check, rules, reload, cleanup, status or version)\n", cmd)
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "gatewayd: %v\n", err)
		if errors.Is(err, config.ErrInvalid) {
			return exitConfig
		}
		return exitFailure
	}
	if err := f(cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "gatewayd %s: %v\n", cmd, err)
		if errors.Is(err, config.ErrInvalid) {
			return exitConfig
		}
		return exitFailure
	}
	return exitOK
}

func cmdCheck(cfg *config.Config, stdout, stderr io.Writer) error {
	if cfg.DNS.Enabled { // the resolver checks its own settings (upstreams, lists)
		h, err := newResolver(cfg, nil, newLogger(cfg, stderr))
		if err != nil {
			return err
		}
		_ = h.Close()
	}
	if w := upstreamWarning(cfg); w != "" {
		fmt.Fprintf(stderr, "%s: warning: %s\n", cfg.Path(), w)
		fmt.Fprintf(stdout, "%s: config OK, with a warning\n", cfg.Path())
		return nil
	}
	fmt.Fprintf(stdout, "%s: config OK\n", cfg.Path())
	return nil
}

func cmdRun(cfg *config.Config, _, stderr io.Writer) error {
	log, level := newLevelLogger(cfg, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fs, err := startFailsafe(ctx, cfg, log, stderr)
	if err != nil {
		return err
	}
	defer fs.close()
	k, err := newKernel(cfg, log)
	if err != nil {
		return err
	}
	defer k.close()
	checkFileLimit(cfg, log)
	if w := upstreamWarning(cfg); w != "" {
		log.Warn(w)
	}
	d, err := newDaemon(cfg, k, log, level)
	if err != nil {
		return err
	}
	stopReloads := startReloads(ctx, d, fs, cfg, log)
	defer stopReloads()
	go trimMemory(ctx, d.flowCount, d.flowsStarted, log)
	// The gateway stops only once no reload runs any more: a reload
	// finishing after the rules are removed would put them back (the
	// gateway also refuses one then).
	runCtx, stopRun := context.WithCancelCause(context.Background())
	defer stopRun(nil)
	defer context.AfterFunc(ctx, func() {
		stopReloads()
		stopRun(context.Cause(ctx))
	})()
	log.Info("starting", "version", version, "config", cfg.Path())
	return fs.run(runCtx, func(ctx context.Context) error {
		return serve(ctx, k.g, d.services(), cfg.Shutdown.Grace.Duration, log)
	})
}

// cmdCleanup removes what gatewayd installs. It refuses while a gatewayd
// holds the state lock (its rules are live; its exit removes them) unless
// force says the lock's holder is no gatewayd. What a gatewayd that died
// recorded as installed (installed.toml in state_dir) is removed first:
// the config file may have been edited since.
func cmdCleanup(cfg *config.Config, force bool, stdout, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	release, locked, err := lockForCleanup(cfg, force, log)
	if err != nil {
		return err
	}
	defer release()
	installed, err := config.Load(installedPath(cfg))
	switch {
	case errors.Is(err, os.ErrNotExist):
		installed = nil
	case err != nil:
		log.Warn("cannot read what the last gatewayd installed; removing what the config file says", "err", err)
		installed = nil
	case installed.StateDir != cfg.StateDir:
		installed = nil // not this state_dir's record
	}
	for _, c := range []*config.Config{installed, cfg} {
		if c == nil {
			continue
		}
		if err := cleanupFor(c, log); err != nil {
			return err
		}
	}
	if installed != nil && locked { // else a live gatewayd may own it (--force)
		_ = os.Remove(installedPath(cfg)) // nothing is installed any more
	}
	fmt.Fprintln(stdout, "gatewayd: cleanup done")
	return nil
}

// cleanupFor removes what gatewayd installs for cfg.
func cleanupFor(cfg *config.Config, log *slog.Logger) error {
	k, err := newKernel(cfg, log)
	if err != nil {
		return err
	}
	defer k.close()
	return k.g.Cleanup()
}
