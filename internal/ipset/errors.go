package ipset

import (
	"errors"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Errors callers can test for with errors.Is. The kernel's own error is
// wrapped beside them.
var (
	// ErrNotExist: the named set does not exist.
	ErrNotExist = errors.New("ipset does not exist")
	// ErrFull: the set holds MaxElem entries (after the kernel dropped the
	// expired ones) and took no more.
	ErrFull = errors.New("ipset is full")
	// ErrInUse: the set is referenced (by an iptables rule) and cannot be
	// destroyed until the reference is gone.
	ErrInUse = errors.New("ipset is referenced by a rule")
)

// The kernel's ipset error codes (include/uapi/linux/netfilter/ipset/
// ip_set.h and ip_set_hash.h) as netlink v1.3.1 returns them. Plain errnos
// come back as syscall.Errno: ENOENT for a missing set, EEXIST when create
// meets a set of the same name but another shape.
const (
	// errElemExist is IPSET_ERR_EXIST: adding an element that is there
	// (without replace), or deleting one that is not.
	errElemExist = nl.IPSetError(nl.IPSET_ERR_EXIST)
	// errBusy is IPSET_ERR_BUSY: destroying a referenced set.
	errBusy = nl.IPSetError(nl.IPSET_ERR_BUSY)
	// errHashFull is IPSET_ERR_HASH_FULL, the first code of the hash
	// types' own range (IPSET_ERR_TYPE_SPECIFIC).
	errHashFull = nl.IPSetError(nl.IPSET_ERR_TYPE_SPECIFIC)
)

func isNoSet(err error) bool     { return errors.Is(err, unix.ENOENT) }
func isSetClash(err error) bool  { return errors.Is(err, unix.EEXIST) }
func isElemExist(err error) bool { return errors.Is(err, errElemExist) }
func isBusy(err error) bool      { return errors.Is(err, errBusy) }
func isHashFull(err error) bool  { return errors.Is(err, errHashFull) }
