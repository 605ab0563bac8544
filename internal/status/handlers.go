package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatewayd/gatewayd/internal/metrics"
)

// defaultFlowLimit is how many flows /status lists unless ?limit= says
// otherwise: enough for any summary, while a router with tens of thousands
// of flows does not build a multi-megabyte answer for every request.
const defaultFlowLimit = 1000

// Paths of the endpoint.
const (
	PathMetrics = "/metrics"
	PathStatus  = "/status"
	PathHealth  = "/healthz"
)

// handler routes the read-only endpoints. The method patterns answer GET
// and HEAD; anything else gets 405 with an Allow header.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathMetrics, s.serveMetrics)
	mux.HandleFunc("GET "+PathStatus, s.serveStatus)
	mux.HandleFunc("GET "+PathHealth, s.serveHealth)
	if s.cfg.Pages != nil {
		mux.Handle("GET /", s.cfg.Pages)
	} else {
		mux.HandleFunc("GET /{$}", serveIndex)
	}
	return s.guard(mux)
}

// guard sets the headers every answer gets and refuses requests naming an
// unknown host: a web page the LAN browses could otherwise re-point its own
// name at the router (DNS rebinding) and read /status from the browser.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if !s.hostAllowed(r.Host) {
			http.Error(w, fmt.Sprintf("status: host %q is not served here: use an IP address, localhost or a configured host name", r.Host),
				http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	return host == "localhost" || slices.ContainsFunc(s.cfg.Hosts, func(h string) bool {
		return strings.TrimSuffix(strings.ToLower(h), ".") == host
	})
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	var buf bytes.Buffer
	if _, err := s.cfg.Metrics.WriteTo(&buf); err != nil {
		s.log.Warn("status: metrics incomplete", "err", err)
	}
	w.Header().Set("Content-Type", metrics.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = buf.WriteTo(w)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	limit := defaultFlowLimit
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			http.Error(w, fmt.Sprintf("status: limit %q: want a count of flows, 0 or more", v), http.StatusBadRequest)
			return
		}
		limit = n
	}
	body, err := json.MarshalIndent(s.snapshot(time.Now(), limit), "", "  ")
	if err != nil {
		s.log.Error("status: encoding /status", "err", err)
		http.Error(w, "status: encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	_, _ = w.Write(append(body, '\n'))
}

// snapshot builds the /status document as of now.
func (s *Server) snapshot(now time.Time, limit int) Snapshot {
	s.mu.Lock()
	config := s.config
	s.mu.Unlock()
	listeners := []Listener{}
	if s.cfg.Listeners != nil {
		listeners = append(listeners, s.cfg.Listeners()...)
	}
	if a := s.Addr(); a.IsValid() {
		listeners = append(listeners, Listener{Name: "status", Addr: a})
	}
	flows := []Flow{}
	if s.cfg.Flows != nil {
		flows = append(flows, s.cfg.Flows()...) // a copy: summarize sorts it
	}
	sum, top := summarize(flows, now, limit)
	return Snapshot{
		Version:       s.cfg.Version,
		GoVersion:     runtime.Version(),
		Started:       s.cfg.Start,
		UptimeSeconds: max(now.Sub(s.cfg.Start).Seconds(), 0),
		Config:        config,
		Listeners:     listeners,
		Flows:         sum,
		ActiveFlows:   top,
	}
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

func serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "gatewayd status endpoint\n%s  Prometheus metrics\n%s   status and active flows (JSON; ?limit=N)\n%s  liveness\n",
		PathMetrics, PathStatus, PathHealth)
}
