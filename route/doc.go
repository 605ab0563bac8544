// Package route decides where each intercepted flow goes.
//
// A Table is an ordered list of rules compiled from RuleSpecs plus a
// default outbound. Match returns the outbound of the first rule whose
// conditions all hold for a Flow (destination and source prefixes,
// destination ports, protocol, source MAC, LAN interface, domain), or the
// default when none does. Within one condition the listed values are
// alternatives; the domain, domain_suffix and domain_keyword lists together
// form one condition (a flow's domain matches if any of them does).
//
// Outbounds are names only here; package outbound implements them. The
// name "direct" is special in one way: DirectPrefixes and DirectDomain
// tell the gateway which destinations it may hand to the kernel fast path,
// because every flow to them would be relayed by "direct" anyway.
//
// The client's MAC and LAN interface a rule may match come from package
// internal/lan (the neighbour table and the LAN subnets).
package route
