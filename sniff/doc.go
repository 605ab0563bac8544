// Package sniff reads the server name a client is about to connect to from
// the first bytes of a flow, so gatewayd can route flows by domain without
// terminating them: the SNI of a TLS ClientHello, the Host of an HTTP/1.x
// request, and the SNI inside a QUIC v1 or v2 Initial packet.
//
// Every function works on bytes the caller has peeked and never modifies
// them. The parsers accept a prefix of a flow: ErrNeedMore says the bytes
// are a plausible but incomplete start of the protocol, and the caller may
// read more (up to MaxPeek bytes for TCP, more datagrams through a
// QUICSniffer for UDP) and call again. Any other error means "not this
// protocol, or malformed": the caller gives up and relays the flow
// unchanged. No input makes them panic, and the work they do is linear in
// the input.
//
// Names are returned normalized (ASCII lowercase, no trailing dot) and
// validated: at most 253 bytes, labels of 1 to 63 bytes made of letters,
// digits, '-' and '_'. A name that is an IP address (a TLS client must not
// send one as SNI, and an HTTP Host may be one) names no domain and gives
// ErrNotFound.
package sniff
