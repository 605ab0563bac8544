package ipset

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NewNetlink returns the Kernel of h's network namespace.
//
// h must hold a NETLINK_NETFILTER socket (netlink.NewHandle and
// NewHandleAt open one unless told which families to open): for a family
// the handle lacks, netlink v1.3.1 opens a socket per request in the
// calling thread's namespace, which would manage whatever namespace the
// thread is in rather than h's.
func NewNetlink(h *netlink.Handle) (Kernel, error) {
	if h == nil || !h.SupportsNetlinkFamily(unix.NETLINK_NETFILTER) {
		return nil, errors.New("opening ipset netlink: the netlink handle has no NETLINK_NETFILTER socket")
	}
	return &nlKernel{h: h}, nil
}

// nlKernel is Kernel over a netlink handle. netlink v1.3.1's ipset calls
// assert that every request error is a syscall.Errno and panic on the
// others it can return (a sequence or sender mismatch, an interrupted
// dump); nlKernel turns those panics into errors.
type nlKernel struct {
	h *netlink.Handle
}

var _ Kernel = (*nlKernel)(nil)

// recovered turns a panic in a netlink call into *err.
func recovered(op string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("netlink %s: unexpected failure in the netlink library: %v", op, p)
	}
}

func (k *nlKernel) IpsetCreate(setname, typename string, options netlink.IpsetCreateOptions) (err error) {
	defer recovered("ipset create", &err)
	return k.h.IpsetCreate(setname, typename, options)
}

func (k *nlKernel) IpsetDestroy(setname string) (err error) {
	defer recovered("ipset destroy", &err)
	return k.h.IpsetDestroy(setname)
}

func (k *nlKernel) IpsetList(setname string) (r *netlink.IPSetResult, err error) {
	defer recovered("ipset list", &err)
	return k.h.IpsetList(setname)
}

func (k *nlKernel) IpsetAdd(setname string, entry *netlink.IPSetEntry) (err error) {
	defer recovered("ipset add", &err)
	return k.h.IpsetAdd(setname, entry)
}

func (k *nlKernel) IpsetDel(setname string, entry *netlink.IPSetEntry) (err error) {
	defer recovered("ipset del", &err)
	return k.h.IpsetDel(setname, entry)
}
