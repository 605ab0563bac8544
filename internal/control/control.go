// Package control is the running gatewayd's control socket: a unix socket
// in its state_dir on which `gatewayd reload -c FILE` hands the daemon a
// config file to apply and hears back whether it was applied, and if not,
// why. One JSON request and one JSON reply per connection.
//
// Only root and the daemon's own user may ask: the socket is mode 0600 in
// the 0700 state_dir, and the server checks the peer's credentials too.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// SocketName is the socket's name in gatewayd's state dir.
const SocketName = "control.sock"

// OpReload asks the daemon to apply Request.Config.
const OpReload = "reload"

// maxRequest bounds a request's size: an op and a path.
const maxRequest = 64 << 10

// IOTimeout bounds a connection: reading the request, the daemon's work
// (a reload may wait for the xtables lock, 5 s per iptables call) and
// writing the reply.
const IOTimeout = time.Minute

// Request is what the CLI asks.
type Request struct {
	Op     string `json:"op"`
	Config string `json:"config"` // absolute path of the file to apply
}

// Reply is the daemon's answer.
type Reply struct {
	OK bool `json:"ok"`
	// Error says why the request was refused (OK false).
	Error string `json:"error,omitempty"`
	// Detail says what was done (OK true), for the CLI to print.
	Detail string `json:"detail,omitempty"`
}

// Handler answers a request. ctx ends when the server closes.
type Handler func(ctx context.Context, req Request) Reply

// Server serves the control socket.
type Server struct {
	ln     *net.UnixListener
	handle Handler
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Listen opens the socket at path. The caller must hold the state lock:
// a socket file left at path by a crashed daemon is replaced.
func Listen(path string, handle Handler, log *slog.Logger) (*Server, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("opening control socket: %s exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale control socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("opening control socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	// Not umask (process-wide, racing other files being created): the
	// state dir is 0700, so nobody else could connect in between.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("restricting control socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{ln: ln, handle: handle, log: log, ctx: ctx, cancel: cancel}, nil
}

// Serve answers connections until Close.
func (s *Server) Serve() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket: accept failed; `gatewayd reload -c` no longer reaches this gatewayd", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
		}()
	}
}

// Close stops accepting, ends the handlers' contexts and waits for them.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.cancel()
	s.wg.Wait()
	if err != nil {
		return fmt.Errorf("closing control socket: %w", err)
	}
	return nil
}

func (s *Server) serve(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(IOTimeout))
	reply := func(r Reply) {
		if err := json.NewEncoder(c).Encode(r); err != nil {
			s.log.Warn("control socket: writing the reply failed", "err", err)
		}
	}
	if err := allowed(c); err != nil {
		s.log.Warn("control socket: refused a client", "err", err)
		reply(Reply{Error: err.Error()})
		return
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&req); err != nil {
		reply(Reply{Error: fmt.Sprintf("reading the request: %v", err)})
		return
	}
	if req.Op != OpReload {
		reply(Reply{Error: fmt.Sprintf("unknown request %q", req.Op)})
		return
	}
	reply(s.handle(s.ctx, req))
}

// allowed admits root and the daemon's own user.
func allowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("reading peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("reading peer credentials: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("reading peer credentials: %w", cerr)
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d (pid %d) may not control gatewayd", cred.Uid, cred.Pid)
	}
	return nil
}

// Ask sends req to the daemon at path and returns its reply. An error
// means the daemon was not reached or did not answer; a refusal is a
// Reply with OK false.
func Ask(ctx context.Context, path string, req Request) (Reply, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Reply{}, fmt.Errorf("connecting to %s: %w", path, err)
	}
	defer c.Close()
	deadline := time.Now().Add(IOTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Reply{}, fmt.Errorf("sending the request to %s: %w", path, err)
	}
	var r Reply
	if err := json.NewDecoder(io.LimitReader(c, maxRequest)).Decode(&r); err != nil {
		return Reply{}, fmt.Errorf("reading the reply from %s: %w", path, err)
	}
	return r, nil
}
