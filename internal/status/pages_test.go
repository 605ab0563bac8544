package status

import (
	"net/http"
	"strings"
	"testing"
)

// TestPages: with Pages set, "/" and other paths the endpoint does not
// serve go to it, behind the Host guard; the endpoint's own paths stay
// its own; without Pages "/" lists them.
func TestPages(t *testing.T) {
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("page " + r.URL.Path))
	})
	s := newTestServer(t, Config{Pages: pages})
	for _, c := range []struct {
		method, path, host string
		code               int
		body               string
	}{
		{http.MethodGet, "/", testHost, http.StatusOK, "page /"},
		{http.MethodGet, "/api/now", testHost, http.StatusOK, "page /api/now"},
		{http.MethodGet, PathHealth, testHost, http.StatusOK, "ok\n"},
		{http.MethodGet, "/", "evil.example:9090", http.StatusMisdirectedRequest, "is not served here"},
		{http.MethodPost, "/api/now", testHost, http.StatusMethodNotAllowed, ""},
	} {
		rec := do(s, c.method, c.path, c.host)
		if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.body) {
			t.Errorf("%s %s (Host %s): %d %q, want %d with %q", c.method, c.path, c.host, rec.Code, rec.Body, c.code, c.body)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: no Cache-Control: no-store", c.method, c.path)
		}
	}
	plain := do(newTestServer(t, Config{}), http.MethodGet, "/", testHost)
	if plain.Code != http.StatusOK || !strings.Contains(plain.Body.String(), PathMetrics) {
		t.Errorf("without Pages, GET /: %d %q, want the list of paths", plain.Code, plain.Body)
	}
}

func TestConfigInfo(t *testing.T) {
	s := newTestServer(t, Config{ConfigPath: "/a.toml", ConfigSHA256: "aa"})
	if got := s.ConfigInfo(); got != (ConfigInfo{Path: "/a.toml", SHA256: "aa"}) {
		t.Errorf("ConfigInfo = %+v", got)
	}
	s.SetConfig("/b.toml", "bb")
	if got := s.ConfigInfo(); got != (ConfigInfo{Path: "/b.toml", SHA256: "bb"}) {
		t.Errorf("after SetConfig, ConfigInfo = %+v", got)
	}
}
