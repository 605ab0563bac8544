package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gatewayd/gatewayd/internal/netlab"
)

// request is what the demo HTTP server saw of one request.
type request struct {
	Path  string
	Local netip.AddrPort // the address the client targeted
	Peer  netip.AddrPort // who connected: the gateway (relayed) or the client (forwarded)
	Bytes int64          // body bytes written
}

// httpServer answers in the server namespace:
//
//	/          "you are <peer>, you reached <local>\n"
//	/big?mb=N  N MiB of deterministic bytes (default 64, at most 4096)
type httpServer struct {
	srv *http.Server
	lns []net.Listener
	log *slog.Logger

	mu   sync.Mutex
	seen []request
}

const maxBigMiB = 4096

// startHTTP listens on every addr inside ns and serves in the background.
func startHTTP(ns *netlab.NS, log *slog.Logger, addrs ...netip.AddrPort) (*httpServer, error) {
	h := &httpServer{log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", h.hello)
	mux.HandleFunc("/big", h.big)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	for _, a := range addrs {
		var ln net.Listener
		err := ns.Do(func() (err error) {
			ln, err = net.Listen("tcp", a.String())
			return err
		})
		if err != nil {
			_ = h.Close()
			return nil, fmt.Errorf("starting the HTTP server on %s in %s: %w", a, ns.Name, err)
		}
		h.lns = append(h.lns, ln)
		go func() {
			if err := h.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("HTTP server", "addr", a, "err", err)
			}
		}()
	}
	return h, nil
}

// Close stops serving and closes the listeners, so that the namespace can
// go away.
func (h *httpServer) Close() error {
	err := h.srv.Close()
	for _, ln := range h.lns {
		_ = ln.Close()
	}
	return err
}

// requests returns a copy of what was served so far.
func (h *httpServer) requests() []request {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]request(nil), h.seen...)
}

func (h *httpServer) record(r *http.Request, n int64) request {
	req := request{Path: r.URL.RequestURI(), Bytes: n}
	req.Peer, _ = netip.ParseAddrPort(r.RemoteAddr)
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		req.Local, _ = netip.ParseAddrPort(la.String())
	}
	req.Peer = netip.AddrPortFrom(req.Peer.Addr().Unmap(), req.Peer.Port())
	req.Local = netip.AddrPortFrom(req.Local.Addr().Unmap(), req.Local.Port())
	h.mu.Lock()
	h.seen = append(h.seen, req)
	h.mu.Unlock()
	h.log.Debug("http request served", "path", req.Path, "peer", req.Peer, "local", req.Local, "bytes", n)
	return req
}

func (h *httpServer) hello(w http.ResponseWriter, r *http.Request) {
	req := h.record(r, 0)
	fmt.Fprintf(w, "you are %s, you reached %s\n", req.Peer, req.Local)
}

func (h *httpServer) big(w http.ResponseWriter, r *http.Request) {
	mb := 64
	if s := r.URL.Query().Get("mb"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxBigMiB {
			http.Error(w, fmt.Sprintf("mb must be 1..%d", maxBigMiB), http.StatusBadRequest)
			return
		}
		mb = n
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8) // deterministic, not compressible to nothing
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(mb<<20))
	var n int64
	for range mb {
		k, err := w.Write(chunk)
		n += int64(k)
		if err != nil {
			break
		}
	}
	h.record(r, n)
}
