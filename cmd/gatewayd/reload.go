package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/gatewayd/gatewayd/config"
	"github.com/gatewayd/gatewayd/internal/control"
	"github.com/gatewayd/gatewayd/internal/watchdog"
)

func controlPath(cfg *config.Config) string {
	return filepath.Join(cfg.StateDir, control.SocketName)
}

// reloadRequest is a `gatewayd reload -c FILE` handed to the reload loop.
type reloadRequest struct {
	path  string
	reply chan<- control.Reply // buffered: the loop never waits on it
}

// startReloads applies reloads one at a time until ctx is done or stop is
// called: on SIGHUP (procd's reload, systemd's ExecReload) the file
// gatewayd was started with, and on `gatewayd reload -c FILE` that FILE,
// handed over the control socket in state_dir and answered with the
// outcome. stop closes the socket, waits for a reload in progress and may
// be called more than once. Call it with the state lock held.
func startReloads(ctx context.Context, d *daemon, fs *failsafe, cfg *config.Config, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	reqs := make(chan reloadRequest)
	done := make(chan struct{})
	started := cfg.Path()
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = applyReload(ctx, d, fs, started, log)
			case r := <-reqs:
				r.reply <- applyReload(ctx, d, fs, r.path, log)
			}
		}
	}()
	srv, err := control.Listen(controlPath(cfg), func(hctx context.Context, req control.Request) control.Reply {
		if !filepath.IsAbs(req.Config) {
			return control.Reply{Error: fmt.Sprintf("config path %q is not absolute", req.Config)}
		}
		reply := make(chan control.Reply, 1)
		select {
		case reqs <- reloadRequest{path: req.Config, reply: reply}:
		case <-hctx.Done():
			return control.Reply{Error: "gatewayd is stopping"}
		case <-ctx.Done():
			return control.Reply{Error: "gatewayd is stopping"}
		}
		return <-reply // taken: the loop answers, applied or not
	}, log)
	if err != nil {
		log.Warn("`gatewayd reload -c FILE` cannot reach this gatewayd; SIGHUP still reloads its config", "err", err)
	} else {
		go srv.Serve()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if srv != nil {
				if err := srv.Close(); err != nil {
					log.Warn("closing the control socket", "err", err)
				}
			}
			signal.Stop(hup)
			cancel()
			<-done
		})
	}
}

// applyReload applies the config at path, tells the watchdog, logs the
// outcome and returns it as the control socket's reply.
func applyReload(ctx context.Context, d *daemon, fs *failsafe, path string, log *slog.Logger) control.Reply {
	start := time.Now()
	cfg, err := d.reload(ctx, path)
	if err != nil {
		log.Error("reload rejected; the running config stays", "config", path, "err", err)
		return control.Reply{Error: err.Error()}
	}
	if err := fs.reloaded(cfg); err != nil {
		log.Warn("the watchdog did not take the reloaded config; a failsafe cleanup removes the previous one's rules", "err", err)
	}
	if w := upstreamWarning(cfg); w != "" {
		log.Warn(w)
	}
	took := time.Since(start).Round(time.Millisecond)
	log.Info("config reloaded", "config", path, "took", took, "rules", len(cfg.Rules), "outbounds", len(cfg.Outbounds))
	return control.Reply{OK: true, Detail: fmt.Sprintf("%d rules, %d outbounds, took %v", len(cfg.Rules), len(cfg.Outbounds), took)}
}

// cmdReload is `gatewayd reload -c FILE`: the file has been validated (an
// invalid one exits with the config error and reaches no daemon). The
// gatewayd running with FILE's state_dir gets FILE's path over its control
// socket, applies it or refuses it, and answers; the answer is printed,
// and a refusal is an error (exit 1) with the daemon's reason.
func cmdReload(cfg *config.Config, stdout, _ io.Writer) error {
	pid, err := runningDaemon(cfg)
	if err != nil {
		return err
	}
	path, err := filepath.Abs(cfg.Path())
	if err != nil {
		return fmt.Errorf("locating %s: %w", cfg.Path(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), control.IOTimeout)
	defer cancel()
	r, err := control.Ask(ctx, controlPath(cfg), control.Request{Op: control.OpReload, Config: path})
	if err != nil {
		return fmt.Errorf("handing %s to gatewayd (pid %d): %w", path, pid, err)
	}
	if !r.OK {
		return fmt.Errorf("gatewayd (pid %d) refused %s; its running config stays: %s", pid, path, r.Error)
	}
	fmt.Fprintf(stdout, "gatewayd (pid %d) applied %s (%s)\n", pid, path, r.Detail)
	return nil
}

// runningDaemon returns the pid of the gatewayd holding cfg's state lock.
func runningDaemon(cfg *config.Config) (int, error) {
	l, err := watchdog.TryLock(lockPath(cfg))
	var held *watchdog.HeldError
	switch {
	case err == nil:
		_ = l.Release()
		return 0, fmt.Errorf("no gatewayd is running with state_dir %s", cfg.StateDir)
	case !errors.As(err, &held):
		return 0, fmt.Errorf("finding the running gatewayd: %w", err)
	case held.Pid <= 0:
		return 0, fmt.Errorf("finding the running gatewayd: %s holds no pid", held.Path)
	}
	return held.Pid, nil
}
