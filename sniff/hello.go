package sniff

import (
	"errors"
	"fmt"
)

// TLS handshake constants (RFC 8446 §4, RFC 6066 §3).
const (
	handshakeHeaderLen     = 4 // msg_type (1) + length (3)
	handshakeTypeClient    = 1 // client_hello
	helloRandomLen         = 32
	maxSessionIDLen        = 32
	extensionServerName    = 0 // server_name
	serverNameTypeHostName = 0 // NameType host_name
	tlsMajorVersion        = 3 // every SSL 3.0 / TLS 1.x version is 0x03xx
)

var errNotClientHello = errors.New("tls: handshake message is not a ClientHello")

// helloServerName returns the SNI host_name of a ClientHello handshake
// message (header included, no record layer) of which msg holds what has
// arrived so far; the same parser serves TLS over TCP and the CRYPTO stream
// of QUIC. It returns the name as soon as the server_name extension has
// arrived, without waiting for the rest of the message; ErrNeedMore if the
// message stops short of it; ErrNotFound if the complete message has no
// host_name. With Encrypted Client Hello this is the outer ClientHello's
// SNI, the client-facing server's public name: the real name is encrypted.
func helloServerName(msg []byte) (string, error) {
	if len(msg) == 0 {
		return "", ErrNeedMore
	}
	if msg[0] != handshakeTypeClient {
		return "", errNotClientHello
	}
	if len(msg) < handshakeHeaderLen {
		return "", ErrNeedMore
	}
	bodyLen := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	c := cursor{buf: msg, off: handshakeHeaderLen, end: handshakeHeaderLen + bodyLen}
	name, err := parseClientHello(&c)
	if err != nil && err != ErrNeedMore && err != ErrNotFound {
		return "", fmt.Errorf("tls client hello: %w", err)
	}
	return name, err
}

// parseClientHello walks a ClientHello body (RFC 8446 §4.1.2) to the
// server_name extension.
func parseClientHello(c *cursor) (string, error) {
	version, err := c.number(2)
	if err != nil {
		return "", err
	}
	if version>>8 != tlsMajorVersion {
		return "", fmt.Errorf("legacy_version 0x%04x is not TLS", version)
	}
	if err := c.skip(helloRandomLen); err != nil {
		return "", err
	}
	sessionID, err := c.vector(1)
	if err != nil {
		return "", err
	}
	if sessionID.remaining() > maxSessionIDLen {
		return "", fmt.Errorf("session id of %d bytes, more than %d", sessionID.remaining(), maxSessionIDLen)
	}
	suites, err := c.vector(2)
	if err != nil {
		return "", err
	}
	if n := suites.remaining(); n == 0 || n%2 != 0 {
		return "", fmt.Errorf("cipher_suites of %d bytes", n)
	}
	compression, err := c.vector(1)
	if err != nil {
		return "", err
	}
	if compression.remaining() == 0 {
		return "", fmt.Errorf("empty compression_methods")
	}
	if c.done() {
		return "", ErrNotFound // a TLS 1.2 hello may end here, without extensions
	}
	exts, err := c.vector(2)
	if err != nil {
		return "", err
	}
	if !c.done() {
		return "", fmt.Errorf("%d bytes after the extensions", c.remaining())
	}
	for !exts.done() {
		typ, err := exts.number(2)
		if err != nil {
			return "", err
		}
		data, err := exts.vector(2)
		if err != nil {
			return "", err
		}
		if typ == extensionServerName {
			return parseServerName(&data)
		}
	}
	return "", ErrNotFound
}

// parseServerName reads a server_name extension body (RFC 6066 §3) and
// returns its first host_name.
func parseServerName(c *cursor) (string, error) {
	list, err := c.vector(2)
	if err != nil {
		return "", err
	}
	if !c.done() {
		return "", fmt.Errorf("server_name: %d bytes after the list", c.remaining())
	}
	if list.done() {
		return "", fmt.Errorf("server_name: empty list")
	}
	for !list.done() {
		typ, err := list.number(1)
		if err != nil {
			return "", err
		}
		// Every NameType defined or ever proposed has a 2-byte length
		// prefix; unknown ones are skipped the way crypto/tls does.
		entry, err := list.vector(2)
		if err != nil {
			return "", err
		}
		if typ != serverNameTypeHostName {
			continue
		}
		name, err := entry.bytes(entry.remaining())
		if err != nil {
			return "", err
		}
		return normalizeName(name)
	}
	return "", ErrNotFound
}
