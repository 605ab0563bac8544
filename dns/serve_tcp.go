package dns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// tcpShutdown bounds how long Shutdown waits for miekg's TCP server.
const tcpShutdown = time.Second

// tcpServer is miekg's TCP server on one transparent listener; the accepted
// connections' local address is the resolver the client asked.
type tcpServer struct {
	ln  net.Listener
	srv *dns.Server
}

func newTCPServer(ln net.Listener, s *Server) *tcpServer {
	return &tcpServer{ln: ln, srv: &dns.Server{
		Listener: ln,
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			client, _ := netip.ParseAddrPort(w.RemoteAddr().String())
			client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
			resp := s.h.Load().Handle(s.ctx, r, QueryInfo{Client: client, Transport: "tcp", MaxSize: dns.MaxMsgSize})
			if resp == nil {
				return
			}
			_ = w.WriteMsg(resp)
		}),
	}}
}

// serve runs until the listener closes.
func (t *tcpServer) serve() error {
	err := t.srv.ActivateAndServe()
	if err != nil && isClosed(err) {
		return nil
	}
	return err
}

func (t *tcpServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), tcpShutdown)
	defer cancel()
	_ = t.srv.ShutdownContext(ctx)
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
