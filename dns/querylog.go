package dns

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// logQuery writes the per-query debug line.
func (h *Handler) logQuery(ctx context.Context, req *dns.Msg, q QueryInfo, res *result, took time.Duration) {
	if !h.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	name, qtype := "", ""
	if len(req.Question) > 0 {
		name, qtype = req.Question[0].Name, dns.Type(req.Question[0].Qtype).String()
	}
	attrs := []slog.Attr{
		slog.String("client", q.Client.String()), slog.String("transport", q.Transport),
		slog.String("name", name), slog.String("type", qtype),
		slog.String("rcode", dns.RcodeToString[res.msg.Rcode]), slog.String("answer", summarize(res.msg)),
		slog.String("source", res.src), slog.Bool("cached", res.src == srcCache || res.src == srcStale),
		slog.Duration("latency", took),
	}
	if res.msg.Truncated {
		attrs = append(attrs, slog.Bool("truncated", true))
	}
	if res.err != nil {
		attrs = append(attrs, slog.String("err", res.err.Error()))
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, "dns: query", attrs...)
}

// maxSummarized bounds the answer records shown in a query log line.
const maxSummarized = 4

// summarize renders the answer section briefly: "CNAME a.example. A 192.0.2.1".
func summarize(m *dns.Msg) string {
	var b strings.Builder
	for i, rr := range m.Answer {
		if i == maxSummarized {
			fmt.Fprintf(&b, " (+%d)", len(m.Answer)-i)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		hdr := rr.Header()
		b.WriteString(dns.Type(hdr.Rrtype).String())
		b.WriteByte(' ')
		b.WriteString(strings.TrimPrefix(rr.String(), hdr.String()))
	}
	return b.String()
}
