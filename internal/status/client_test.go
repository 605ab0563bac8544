package status

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serveFixed answers every request with code and body.
func serveFixed(t *testing.T, code int, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != PathStatus || r.Method != http.MethodGet {
			t.Errorf("client asked %s %s", r.Method, r.URL)
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

func TestFetchStatusAnswers(t *testing.T) {
	ctx := context.Background()
	addr := serveFixed(t, http.StatusOK, `{"version":"v3","flows":{"active":2,"by_proto":{"udp":2}},"active_flows":[{"proto":"udp","client":"198.18.0.2:1000","destination":"198.19.0.1:53","bytes_up":1}]}`)
	snap, raw, err := FetchStatus(ctx, nil, addr)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Version != "v3" || snap.Flows.Active != 2 || len(snap.ActiveFlows) != 1 || snap.ActiveFlows[0].Client.Port() != 1000 {
		t.Errorf("decoded %+v", snap)
	}
	if !strings.HasPrefix(string(raw), `{"version":"v3"`) {
		t.Errorf("raw body %q", raw)
	}

	for _, c := range []struct {
		code      int
		body, err string
	}{
		{http.StatusOK, "not json", "decoding"},
		{http.StatusOK, `{"active_flows":[{"client":"not-an-address"}]}`, "decoding"},
		{http.StatusMisdirectedRequest, "status: host \"x\" is not served here\n", `421 Misdirected Request: status: host "x" is not served here`},
		{http.StatusInternalServerError, strings.Repeat("x", 10*maxErrorBytes), "500"},
	} {
		_, _, err := FetchStatus(ctx, nil, serveFixed(t, c.code, c.body))
		if err == nil || !strings.Contains(err.Error(), c.err) || errors.Is(err, ErrUnreachable) {
			t.Errorf("answer %d %.20q: error %v, want one with %q", c.code, c.body, err, c.err)
		}
		if err != nil && len(err.Error()) > 2*maxErrorBytes {
			t.Errorf("answer %d: error quotes %d bytes of body", c.code, len(err.Error()))
		}
	}
}
