package config

import (
	"errors"
	"path/filepath"
)

// StatusPath is a file the status endpoint reads: an absolute path, or ""
// for none. Decoding refuses relative paths, which would depend on the
// directory gatewayd was started from.
type StatusPath string

// UnmarshalText checks an absolute path or "".
func (p *StatusPath) UnmarshalText(b []byte) error {
	s := string(b)
	if s != "" && !filepath.IsAbs(s) {
		return errors.New("want an absolute path, or \"\" for none")
	}
	*p = StatusPath(filepath.Clean(s))
	if s == "" {
		*p = ""
	}
	return nil
}
