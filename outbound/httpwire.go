package outbound

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// maxResponseHeader caps the CONNECT response header (all interim
// responses included): a proxy's answer is a status line and a few
// fields, so 8 KiB is plenty and bounds what a hostile one can make us
// buffer.
const maxResponseHeader = 8 << 10

// maxInterimResponses bounds the 1xx responses skipped before the final
// one (RFC 9110 sec. 15.2 allows any number; real proxies send none).
const maxInterimResponses = 4

// headerChunk is the first allocation for a response header: the usual
// "HTTP/1.1 200 Connection established" answer fits.
const headerChunk = 128

// connectRequest is the CONNECT request for hostport, with auth (a full
// Proxy-Authorization value) when set.
func connectRequest(hostport, auth string) []byte {
	var b strings.Builder
	b.WriteString("CONNECT " + hostport + " HTTP/1.1\r\nHost: " + hostport + "\r\n")
	if auth != "" {
		b.WriteString("Proxy-Authorization: " + auth + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// readHeaderBlock reads one header block (up to and including the empty
// line) from r without reading a byte past it, in reads no longer than
// the fewest bytes that could end the block. Lines may end in CRLF or a
// bare LF (RFC 9112 sec. 2.2 lets recipients accept it). It fails after
// limit bytes.
func readHeaderBlock(r io.Reader, limit int) ([]byte, error) {
	// state: 0 inside a line, 1 right after a LF, 2 after LF CR.
	// From 0 the block needs at least LF LF; from 1 or 2 one more LF.
	buf, state := make([]byte, 0, headerChunk), 0
	for {
		need := 1
		if state == 0 {
			need = 2
		}
		if len(buf)+need > limit {
			return nil, fmt.Errorf("response header longer than %d bytes", limit)
		}
		buf = slices.Grow(buf, need)
		n, err := r.Read(buf[len(buf) : len(buf)+need])
		for _, c := range buf[len(buf) : len(buf)+n] {
			switch {
			case c == '\n' && state != 0:
				return buf[:len(buf)+n], nil // the only possible end: the last byte read
			case c == '\n':
				state = 1
			case c == '\r' && state == 1:
				state = 2
			default:
				state = 0
			}
		}
		buf = buf[:len(buf)+n]
		if err != nil {
			return nil, eofIsUnexpected(err)
		}
	}
}

// parseStatusLine reads the status code of a header block: the first
// line must be "HTTP/1.x NNN[ reason]". It returns the line for messages.
func parseStatusLine(block []byte) (int, string, error) {
	line, _, _ := strings.Cut(string(block), "\n")
	line = strings.TrimSuffix(line, "\r")
	rest, ok := strings.CutPrefix(line, "HTTP/1.")
	if !ok || len(rest) < 5 || rest[0] < '0' || rest[0] > '9' || rest[1] != ' ' {
		return 0, "", fmt.Errorf("not an HTTP/1 status line: %q", printable(line, maxShownLen))
	}
	digits := rest[2:5]
	code := 0
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			code = -1
			break
		}
		code = code*10 + int(digits[i]-'0')
	}
	if code < 100 || code > 599 || len(rest) > 5 && rest[5] != ' ' {
		return 0, "", fmt.Errorf("bad status code in %q", printable(line, maxShownLen))
	}
	return code, printable(line, maxShownLen), nil
}

// readConnectResponse reads the response to a CONNECT, skipping interim
// 1xx responses, and returns the final status code and line. It never
// reads past the final header block.
func readConnectResponse(r io.Reader) (int, string, error) {
	budget := maxResponseHeader
	for interim := 0; ; interim++ {
		block, err := readHeaderBlock(r, budget)
		if err != nil {
			return 0, "", err
		}
		budget -= len(block)
		code, line, err := parseStatusLine(block)
		if err != nil {
			return 0, "", err
		}
		if code >= 200 || code == 101 {
			return code, line, nil
		}
		if interim == maxInterimResponses {
			return 0, "", errors.New("too many interim (1xx) responses")
		}
	}
}
