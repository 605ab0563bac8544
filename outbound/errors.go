package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// FailureKind sorts dial failures for the counters and logs.
type FailureKind int

// The failure kinds, most specific first (KindOf checks in this order).
const (
	KindOther       FailureKind = iota // local errors: socket options, bad address family, ...
	KindCanceled                       // the caller's context was cancelled
	KindAuth                           // ErrAuth
	KindRefused                        // ErrRefused, ECONNREFUSED
	KindUnreachable                    // ErrUnreachable, ENETUNREACH, EHOSTUNREACH
	KindTimeout                        // ErrTimeout, a deadline (ours or the context's)
	KindHandshake                      // ErrHandshake: the proxy broke the protocol
	KindProxy                          // ErrProxy: the proxy reported another failure
	KindRejected                       // ErrRejected
	KindUnsupported                    // ErrUnsupported
)

var kindNames = [...]string{
	KindOther:       "other",
	KindCanceled:    "canceled",
	KindAuth:        "auth",
	KindRefused:     "refused",
	KindUnreachable: "unreachable",
	KindTimeout:     "timeout",
	KindHandshake:   "handshake",
	KindProxy:       "proxy",
	KindRejected:    "rejected",
	KindUnsupported: "unsupported",
}

func (k FailureKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("FailureKind(%d)", int(k))
}

// KindOf sorts a dial error into a FailureKind (KindOther for nil).
func KindOf(err error) FailureKind {
	var ne net.Error
	switch {
	case err == nil:
		return KindOther
	case errors.Is(err, ErrRejected):
		return KindRejected
	case errors.Is(err, ErrUnsupported):
		return KindUnsupported
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, ErrAuth):
		return KindAuth
	case errors.Is(err, ErrRefused), errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, ErrUnreachable), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return KindUnreachable
	case errors.Is(err, ErrTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, ErrHandshake):
		return KindHandshake
	case errors.Is(err, ErrProxy):
		return KindProxy
	}
	return KindOther
}

// kindError is an error whose text is err's and which also matches kind
// (one of the package's sentinels) with errors.Is.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// kinded formats an error that matches kind.
func kinded(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
