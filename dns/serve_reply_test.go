package dns

import (
	"net/netip"
	"os"
	"testing"
)

// TestReplySocketsStayClosed: a resolver goroutine that outlives
// Shutdown's grace and sends its answer after closeAll must not open a
// reply socket again (nothing would ever close it).
func TestReplySocketsStayClosed(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("reply sockets are transparent: needs root (CAP_NET_RAW)")
	}
	r := newReplySockets(0)
	src := netip.MustParseAddrPort("127.0.0.1:0") // binds only; nothing is sent
	if _, err := r.socket(src); err != nil {
		t.Fatalf("reply socket before closeAll: %v", err)
	}
	r.closeAll()
	if _, err := r.socket(src); err == nil {
		t.Error("a reply socket was opened after closeAll")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.m) != 0 {
		t.Errorf("%d reply sockets open after closeAll", len(r.m))
	}
}
