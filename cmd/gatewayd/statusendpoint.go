package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/status"
)

// statusRetry is how often a status endpoint that could not listen tries
// again: its LAN address may come up after gatewayd (a bridge configured
// later at boot), and the daemon does not wait for it.
const statusRetry = 5 * time.Second

// statusEndpoint runs the status endpoint beside the relays. It never stops
// the daemon: an endpoint that cannot listen is logged and retried, one
// that fails while serving is logged and stays down. Interception matters
// more than its dashboard.
type statusEndpoint struct {
	srv   *status.Server
	view  *statusView
	log   *slog.Logger
	retry time.Duration // statusRetry; shorter in tests

	done     chan struct{} // closed by Shutdown
	stopOnce sync.Once
	up       atomic.Bool // listening
}

var _ service = (*statusEndpoint)(nil)

// newStatusEndpoint builds the endpoint for d as the [status] section
// configures it. It returns nil when the section disables it, or (logged)
// when the endpoint cannot be built, which the config's checks rule out.
func newStatusEndpoint(d *daemon) *statusEndpoint {
	cfg := d.cfg
	if !cfg.Status.Enabled {
		return nil
	}
	log := d.log.With("part", "status")
	view := newStatusView(d)
	listen := cfg.Status.Listen.AddrPort
	dash, dashSrc := newDashboard(d, view, log)
	srv, err := status.New(status.Config{
		Listen: listen,
		// Only a non-loopback address written in the config gets here.
		AllowNonLoopback: !listen.Addr().IsLoopback(),
		AllowClient:      d.addrs.InLAN,
		Hosts:            cfg.Status.HostNames(),
		Version:          version,
		Start:            time.Now(),
		ConfigPath:       cfg.Path(),
		ConfigSHA256:     configDigest(cfg.Path(), log),
		Metrics:          view.registry(),
		Flows:            view.flows,
		Listeners:        view.listeners,
		Pages:            dash.Handler(),
	}, log)
	if err != nil {
		log.Error("status endpoint disabled", "err", err)
		return nil
	}
	dashSrc.srv.Store(srv)
	r := &statusEndpoint{srv: srv, view: view, log: log, retry: statusRetry, done: make(chan struct{})}
	if !listen.Addr().IsLoopback() && !d.addrs.IsLANAddr(listen.Addr()) {
		log.Warn("status.listen is not an address of a LAN interface; only loopback and LAN clients are answered on it",
			"listen", listen.String(), "lan", cfg.LAN.Interfaces)
	}
	return r
}

// Listen opens the endpoint. A failure (address in use, LAN address not
// there yet) is logged, and Serve keeps trying: it never fails the daemon.
func (r *statusEndpoint) Listen(ctx context.Context) error {
	if err := r.srv.Listen(ctx); err != nil {
		r.log.Warn("status endpoint not listening; gatewayd runs on and retries", "err", err, "every", r.retry)
		return nil
	}
	r.up.Store(true)
	return nil
}

// Serve answers status requests until Shutdown, first retrying Listen if
// it failed. It returns nil: the endpoint's troubles are only logged.
func (r *statusEndpoint) Serve() error {
	for !r.up.Load() {
		select {
		case <-r.done:
			return nil
		case <-time.After(r.retry):
		}
		if err := r.srv.Listen(context.Background()); err != nil {
			r.log.Debug("status endpoint still not listening", "err", err)
			continue
		}
		r.up.Store(true)
	}
	if err := r.srv.Serve(); err != nil {
		r.log.Error("status endpoint stopped; gatewayd runs on without it", "err", err)
		<-r.done
	}
	return nil
}

// Shutdown closes the endpoint, letting requests in progress finish for up
// to grace.
func (r *statusEndpoint) Shutdown(grace time.Duration) {
	r.stopOnce.Do(func() { close(r.done) })
	r.srv.Shutdown(grace)
}

// reloaded tells the endpoint about a config and policy applied by a
// reload: the config digest /status shows and the outbounds the flows and
// metrics name. (status.listen, status.hosts and status.enabled take
// effect at the next start.)
func (r *statusEndpoint) reloaded(cfg *config.Config, pol *policy) {
	r.srv.SetConfig(cfg.Path(), configDigest(cfg.Path(), r.log))
	r.view.setPolicy(pol)
}

// configDigest is the SHA-256 of the config file as it is now ("" with
// the reason logged if it cannot be read, e.g. the built-in defaults).
func configDigest(path string, log *slog.Logger) string {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Debug("status: no config digest", "err", err)
		return ""
	}
	return status.ConfigDigest(data)
}
