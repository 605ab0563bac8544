package tcp

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/gatewayd/gatewayd/sniff"
)

// DefaultSniffTimeout is how long a flow waits for the client's first
// bytes when Config.Sniff is on. Client-first protocols (TLS, HTTP) send
// them with the handshake's last ACK; a server-first one (SSH, SMTP) waits
// this long once, then relays unnamed.
const DefaultSniffTimeout = 300 * time.Millisecond

// sniffStart is the first read buffer; a ClientHello with post-quantum key
// shares is about 1.8 KiB, most others under 600 bytes.
const sniffStart = 2 << 10

// peek reads the client's first bytes until they name a server, show they
// are no protocol that names one, reach sniff.MaxPeek, or the client is
// silent for timeout. It returns the bytes read, which go upstream before
// the relay starts, and the name. A client that closed or reset during it
// gives an error.
func peek(c *net.TCPConn, timeout time.Duration) (prefix []byte, domain string, err error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, "", err
	}
	buf := make([]byte, 0, sniffStart)
	for len(buf) < sniff.MaxPeek {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), sniff.MaxPeek-len(buf)))...)[:len(buf)]
		}
		n, rerr := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			name, serr := sniff.Sniff(sniff.ProtoTCP, buf)
			if !errors.Is(serr, sniff.ErrNeedMore) {
				domain = name
				break
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, os.ErrDeadlineExceeded) {
				err = rerr
			}
			break
		}
	}
	if derr := c.SetReadDeadline(time.Time{}); err == nil {
		err = derr
	}
	return buf, domain, err
}
