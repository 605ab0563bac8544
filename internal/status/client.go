package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxStatusBytes caps a /status answer the client reads: the default flow
// limit makes a few hundred KiB; anything near this is not a gatewayd.
const maxStatusBytes = 32 << 20

// maxErrorBytes is how much of an error answer's body is quoted.
const maxErrorBytes = 512

// ErrUnreachable is returned (wrapped) by FetchStatus when no connection to
// the endpoint could be made or it broke off before answering.
var ErrUnreachable = errors.New("gatewayd is not reachable")

// FetchStatus gets /status from the endpoint at addr ("127.0.0.1:9090") and
// returns the document and the raw JSON. c nil uses a plain http.Client; ctx
// bounds the whole exchange.
func FetchStatus(ctx context.Context, c *http.Client, addr string) (*Snapshot, []byte, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, fmt.Errorf("status address %q: want host:port: %w", addr, err)
	}
	if c == nil {
		c = &http.Client{}
	}
	url := "http://" + addr + PathStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBytes+1))
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("reading %s: %w", url, err)
	case len(body) > maxStatusBytes:
		return nil, nil, fmt.Errorf("reading %s: answer larger than %d bytes", url, maxStatusBytes)
	case resp.StatusCode != http.StatusOK:
		msg := strings.TrimSpace(string(body[:min(len(body), maxErrorBytes)]))
		return nil, nil, fmt.Errorf("%s answered %s: %s", url, resp.Status, msg)
	}
	var snap Snapshot
	if err := json.Unmarshal(body, &snap); err != nil {
		return nil, nil, fmt.Errorf("decoding %s: %w", url, err)
	}
	return &snap, body, nil
}
