package main

import (
	"errors"
	"fmt"
	"io"
	"syscall"

	"github.com/gatewayd/gatewayd/gateway"
	"github.com/gatewayd/gatewayd/internal/watchdog"
)

// cmdReload is `gatewayd reload -c FILE`: the file has been validated (an
// invalid one exits with the config error and signals nothing); the
// gatewayd running with its state_dir gets SIGHUP and re-reads it. That
// gatewayd logs whether it applied the file or kept its running config.
func cmdReload(cfg *gateway.Config, stdout, _ io.Writer) error {
	l, err := watchdog.TryLock(lockPath(cfg))
	var held *watchdog.HeldError
	switch {
	case err == nil:
		_ = l.Release()
		return fmt.Errorf("no gatewayd is running with state_dir %s", cfg.StateDir)
	case !errors.As(err, &held):
		return fmt.Errorf("finding the running gatewayd: %w", err)
	case held.Pid <= 0:
		return fmt.Errorf("finding the running gatewayd: %s holds no pid", held.Path)
	}
	if err := syscall.Kill(held.Pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signalling gatewayd (pid %d): %w", held.Pid, err)
	}
	fmt.Fprintf(stdout, "gatewayd (pid %d) is reloading %s; its log says whether it was applied\n", held.Pid, cfg.Path())
	return nil
}
