package tcp

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestDirectDialer(t *testing.T) {
	ln := listenLoopback(t)
	dst := ln.Addr().(*net.TCPAddr).AddrPort()
	c, err := DirectDialer{Timeout: failAfter}.DialTCP(context.Background(), Flow{Dst: dst})
	if err != nil {
		t.Fatalf("DialTCP(%s): %v", dst, err)
	}
	_ = c.Close()

	_ = ln.Close()
	_, err = DirectDialer{Timeout: failAfter}.DialTCP(context.Background(), Flow{Dst: dst})
	if err == nil || !strings.HasPrefix(err.Error(), "dialing "+dst.String()) {
		t.Errorf("DialTCP to a closed port: %v, want an error naming %s", err, dst)
	}
}
