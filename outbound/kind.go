package outbound

// Rejects reports whether ob is a reject outbound, whose flows the relays
// can refuse without asking it (the UDP relay drops such datagrams before
// any session exists).
func Rejects(ob Outbound) bool {
	_, ok := ob.(*reject)
	return ok
}
