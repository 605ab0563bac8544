// Package dashboard is gatewayd's built-in, read-only web dashboard: one
// page (embedded HTML, CSS and JavaScript, no framework) and the small
// JSON endpoints it polls, which are an API of their own (README,
// "Dashboard"). The status endpoint serves it behind its client and Host
// guards.
//
// It reads the daemon through a Source of funcs and depends on none of
// the relays. Its memory is bounded whatever the number of open pages:
// the throughput history is one fixed ring, sampled at most every
// sampleEvery when pages ask.
package dashboard

import (
	_ "embed" // the page's files
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// The page's three files, embedded as strings and served as they are: no
// file server, whose code would add tens of KiB to the router binary.
var (
	//go:embed assets/index.html
	indexHTML string
	//go:embed assets/dashboard.css
	dashboardCSS string
	//go:embed assets/dashboard.js
	dashboardJS string
)

// API paths.
const (
	PathNow     = "/api/now"
	PathFlows   = "/api/flows"
	PathClients = "/api/clients"
	PathDNS     = "/api/dns"
	PathRules   = "/api/rules"
)

// Dashboard serves the page and its API.
type Dashboard struct {
	src    Source
	log    *slog.Logger
	now    func() time.Time
	hist   history
	leases *leases
}

// New returns the dashboard of src; a nil log discards output.
func New(src Source, log *slog.Logger) *Dashboard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dashboard{src: src, log: log, now: time.Now, leases: &leases{path: src.LeasesPath}}
}

// Handler routes the page, its files and the API (GET and HEAD only).
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", file("text/html; charset=utf-8", indexHTML))
	mux.Handle("GET /dashboard.css", file("text/css; charset=utf-8", dashboardCSS))
	mux.Handle("GET /dashboard.js", file("text/javascript; charset=utf-8", dashboardJS))
	mux.HandleFunc("GET "+PathNow, d.serve(d.nowView))
	mux.HandleFunc("GET "+PathFlows, d.serveFlows)
	mux.HandleFunc("GET "+PathClients, d.serve(d.clientsView))
	mux.HandleFunc("GET "+PathDNS, d.serve(d.dnsView))
	mux.HandleFunc("GET "+PathRules, d.serve(d.rulesView))
	return secure(mux)
}

// contentPolicy lets the page load only its own files and be framed by
// no other page (it is read-only, but shows the LAN's traffic).
const contentPolicy = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// secure sets the headers that keep the page to itself.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// file serves one embedded file.
func file(contentType, body string) http.Handler {
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", length)
		_, _ = io.WriteString(w, body)
	})
}

// serve answers with the JSON of view().
func (d *Dashboard) serve(view func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { d.writeJSON(w, view()) }
}

func (d *Dashboard) writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		d.log.Error("dashboard: encoding an answer", "err", err)
		http.Error(w, "dashboard: encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	_, _ = w.Write(append(body, '\n'))
}

// names returns the namer of LAN clients as of now.
func (d *Dashboard) names() namer {
	l, err := d.leases.get()
	if err != nil {
		d.log.Debug("dashboard: no DHCP leases", "err", err)
	}
	return namer{leases: l, hosts: d.src.HostNames, mac: d.src.MAC}
}
