package dns

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// The UDP fast path. Most LAN queries repeat one another byte for byte but
// for their ID: the same stub resolvers ask the same names with the same
// flags and EDNS options. The wire cache keeps the packed reply of such a
// query, keyed by the query's bytes after the ID, so a repeat is answered
// by copying it, writing the ID and the remaining TTL, without unpacking,
// resolving or packing anything. What goes in is exactly what the Handler
// answered from a fresh cache entry or an upstream (same truncation, same
// EDNS record), so the fast path cannot answer differently from the slow
// one; it only stops at the entry's expiry, after which the Handler decides
// again (upstream, serve-stale, rebinding...).

// Wire cache bounds.
const (
	// maxWireEntries bounds the memoized replies (whatever the answer
	// cache holds, each costs its query and reply, ~100-600 bytes).
	maxWireEntries = 4096
	// maxWireKey skips unusual queries: a plain question with an OPT
	// record is 30-300 bytes.
	maxWireKey = 512
)

// wireCache maps query bytes (without the ID) to packed replies.
type wireCache struct {
	mu  sync.Mutex
	m   map[string]*wireEntry
	max int
}

// wireEntry is one packed reply with ID 0 and where its TTLs are.
type wireEntry struct {
	reply   []byte
	ttls    []uint16 // offsets of the TTL field of every record but OPT
	expires time.Time
}

func newWireCache(size int) *wireCache {
	return &wireCache{m: make(map[string]*wireEntry), max: size}
}

// get writes the reply to query into out (grown as needed) with query's ID
// and the TTL left at now; false if there is no fresh entry.
func (c *wireCache) get(query []byte, now time.Time, out []byte) ([]byte, bool) {
	if c == nil || len(query) < headerLen || len(query) > maxWireKey {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.m[string(query[2:])]
	if ok && now.Add(time.Second).After(e.expires) {
		delete(c.m, string(query[2:])) // under a second left: let the Handler decide
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	out = append(out[:0], e.reply...)
	copy(out, query[:2])
	ttl := uint32(e.expires.Sub(now) / time.Second)
	for _, off := range e.ttls {
		binary.BigEndian.PutUint32(out[off:], ttl)
	}
	return out, true
}

// put memoizes reply, the answer to query that stays fresh until expires.
// reply must be packed by miekg/dns, whose compression points at names
// only: in arbitrary bytes a name may point into a TTL field, and then
// change with it.
func (c *wireCache) put(query, reply []byte, expires time.Time) {
	if c == nil || len(query) < headerLen || len(query) > maxWireKey {
		return
	}
	ttls, ok := ttlOffsets(reply)
	if !ok || len(ttls) == 0 {
		return
	}
	e := &wireEntry{reply: append([]byte(nil), reply...), ttls: ttls, expires: expires}
	e.reply[0], e.reply[1] = 0, 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		c.shrinkLocked(expires)
	}
	c.m[string(query[2:])] = e
}

// shrinkLocked drops expired entries and, if that freed nothing, an eighth
// of the others (Go's map iteration order is random enough for eviction).
func (c *wireCache) shrinkLocked(now time.Time) {
	drop := max(c.max/8, 1)
	for k, e := range c.m {
		if now.After(e.expires) {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max || drop == 0 {
			return
		}
		delete(c.m, k)
		drop--
	}
}

// ttlOffsets walks a packed message and returns the offset of the TTL of
// every resource record except OPT (whose "TTL" holds EDNS flags). false:
// the message is not well formed.
func ttlOffsets(msg []byte) ([]uint16, bool) {
	if len(msg) < headerLen || len(msg) > 0xFFFF {
		return nil, false
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off := headerLen
	var ok bool
	for range qd {
		if off, ok = skipName(msg, off); !ok || off+4 > len(msg) {
			return nil, false
		}
		off += 4 // type, class
	}
	ttls := make([]uint16, 0, rrs)
	for range rrs {
		if off, ok = skipName(msg, off); !ok || off+10 > len(msg) {
			return nil, false
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		if typ != dns.TypeOPT {
			ttls = append(ttls, uint16(off+4))
		}
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
		if off > len(msg) {
			return nil, false
		}
	}
	return ttls, off == len(msg)
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(msg []byte, off int) (int, bool) {
	for off < len(msg) {
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xC0 == 0xC0: // compression pointer: the name ends here
			return off + 2, off+2 <= len(msg)
		case l&0xC0 != 0: // reserved label types
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}
