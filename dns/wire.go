package dns

import (
	"context"
	"encoding/binary"
	"log/slog"

	"github.com/miekg/dns"
)

// MaxSizeFor returns the QueryInfo.MaxSize for req received over transport.
func MaxSizeFor(req *dns.Msg, transport string) int {
	if transport == "tcp" {
		return dns.MaxMsgSize
	}
	if opt := req.IsEdns0(); opt != nil {
		return max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// HandleWire unpacks a query, handles it and packs the reply. ok is false
// when nothing must be sent: undecodable input too short to carry a
// header, and responses (QR=1). Other undecodable queries get a FORMERR
// header echoing their ID. A zero q.MaxSize is set with MaxSizeFor. Fresh
// UDP answers are memoized for CachedUDP.
func (h *Handler) HandleWire(ctx context.Context, wire []byte, q QueryInfo) (reply []byte, ok bool) {
	req := new(dns.Msg)
	if err := req.Unpack(wire); err != nil {
		h.stats.countQuery(q.Transport)
		h.stats.malformed.Add(1)
		h.log.Debug("dns: undecodable query", "client", q.Client, "len", len(wire), "err", err)
		return formErrWire(wire)
	}
	if q.MaxSize == 0 {
		q.MaxSize = MaxSizeFor(req, q.Transport)
	}
	res := h.handle(ctx, req, q)
	if res.msg == nil {
		return nil, false
	}
	out, err := res.msg.Pack()
	if err != nil {
		// Not expected: every reply is built from decodable parts.
		h.log.Warn("dns: packing reply", "client", q.Client, "err", err)
		out, err = errorReply(req, dns.RcodeServerFailure).Pack()
		if err != nil {
			return nil, false
		}
		return out, true
	}
	if q.Transport == "udp" && res.fresh != nil && res.ede == nil {
		h.wire.put(wire, out, res.fresh.expires())
	}
	return out, true
}

// CachedUDP answers a UDP query that repeats a memoized one (but for its
// ID) into out, counting it as a cache hit; false: use HandleWire. With
// debug logging or the query log on every query takes the slow path,
// which logs and records it.
func (h *Handler) CachedUDP(query, out []byte) ([]byte, bool) {
	if h.wire == nil || h.recent != nil || h.log.Enabled(context.Background(), slog.LevelDebug) {
		return nil, false
	}
	out, ok := h.wire.get(query, h.now(), out)
	if ok {
		h.stats.countQuery("udp")
		h.stats.cacheHits.Add(1)
	}
	return out, ok
}

// Header layout (RFC 1035 §4.1.1).
const (
	headerLen  = 12
	flagQR     = 1 << 15
	opcodeMask = 0xF << 11
)

// formErrWire returns a FORMERR reply with wire's ID and opcode and no
// sections, if wire has a header and is a query.
func formErrWire(wire []byte) ([]byte, bool) {
	if len(wire) < headerLen {
		return nil, false
	}
	flags := binary.BigEndian.Uint16(wire[2:])
	if flags&flagQR != 0 {
		return nil, false
	}
	out := make([]byte, headerLen)
	copy(out, wire[:2])
	binary.BigEndian.PutUint16(out[2:], flagQR|flags&opcodeMask|dns.RcodeFormatError)
	return out, true
}
