package sniff

import "errors"

// errOverrun: a length field points past the end of the structure that
// contains it; the message is malformed.
var errOverrun = errors.New("length overruns the enclosing structure")

// cursor reads a length-delimited TLS structure of which possibly only a
// prefix has arrived. buf holds the bytes that have arrived, from the start
// of the outermost structure; end is where the structure being read ends
// according to its declared length, and may lie beyond len(buf). Reading
// past end is malformed (errOverrun); reading inside end but past what has
// arrived is ErrNeedMore. Sub-structures share buf.
type cursor struct {
	buf []byte
	off int
	end int
}

// need checks that n more bytes belong to the structure and have arrived.
func (c *cursor) need(n int) error {
	if n < 0 || n > c.end-c.off {
		return errOverrun
	}
	if c.off+n > len(c.buf) {
		return ErrNeedMore
	}
	return nil
}

// skip passes over n bytes of the structure, which need not have arrived.
func (c *cursor) skip(n int) error {
	if n < 0 || n > c.end-c.off {
		return errOverrun
	}
	c.off += n
	return nil
}

// number reads an n-byte big-endian integer (n ≤ 3).
func (c *cursor) number(n int) (int, error) {
	if err := c.need(n); err != nil {
		return 0, err
	}
	v := 0
	for _, x := range c.buf[c.off : c.off+n] {
		v = v<<8 | int(x)
	}
	c.off += n
	return v, nil
}

// bytes returns the next n bytes, which must have arrived.
func (c *cursor) bytes(n int) ([]byte, error) {
	if err := c.need(n); err != nil {
		return nil, err
	}
	b := c.buf[c.off : c.off+n]
	c.off += n
	return b, nil
}

// vector reads a vector's length prefix of lenBytes bytes and returns a
// cursor over the vector's body; c moves past the body, whether or not it
// has arrived.
func (c *cursor) vector(lenBytes int) (cursor, error) {
	n, err := c.number(lenBytes)
	if err != nil {
		return cursor{}, err
	}
	sub := cursor{buf: c.buf, off: c.off, end: c.off + n}
	if err := c.skip(n); err != nil {
		return cursor{}, err
	}
	return sub, nil
}

// done reports whether the structure has been read to its end.
func (c *cursor) done() bool { return c.off >= c.end }

// remaining is how many bytes of the structure are left, arrived or not.
func (c *cursor) remaining() int { return c.end - c.off }
