package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// service is a part of the daemon that runs beside the interception: the
// TCP and UDP relays, the DNS hijack, the neighbour watch, the status
// endpoint.
type service interface {
	// Listen opens its sockets; it runs before any rule points at them.
	Listen(ctx context.Context) error
	// Serve runs until Shutdown and returns nil then.
	Serve() error
	// Shutdown stops accepting and closes what is open after grace.
	Shutdown(grace time.Duration)
}

// footprint is what the daemon installs in the kernel (*gateway.Gateway):
// Remove must leave the LAN on plain forwarding, and only an error
// wrapping gateway.ErrInterceptionLeft may leave anything installed.
type footprint interface {
	Install(ctx context.Context) error
	Remove() error
}

// serve is the daemon's lifecycle: open every service's sockets, install
// the interception, serve until ctx is done or a service fails, then
// remove the interception first (the LAN falls back to plain forwarding at
// once) and give flows grace to finish. A listener that cannot open
// installs nothing.
func serve(ctx context.Context, fp footprint, services []service, grace time.Duration, log *slog.Logger) (err error) {
	var opened []service
	defer func() {
		for _, s := range opened {
			s.Shutdown(grace)
		}
	}()
	for _, s := range services {
		if err := s.Listen(ctx); err != nil {
			return fmt.Errorf("opening listeners: %w", err)
		}
		opened = append(opened, s)
	}
	if err := fp.Install(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, fp.Remove()) }()
	served := make(chan error, len(services))
	for _, s := range services {
		go func() { served <- s.Serve() }()
	}
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
		return nil
	case err := <-served:
		if err == nil {
			err = errors.New("listener stopped unexpectedly")
		}
		return fmt.Errorf("serving: %w", err)
	}
}
