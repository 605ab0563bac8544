// Package e2e holds gatewayd's end-to-end tests: the built gatewayd binary
// runs in the gateway namespace of a netlab lab, with real iptables, real
// TPROXY and real sockets in the client and server namespaces. They need
// root; under CI=true a missing prerequisite fails them instead of skipping.
package e2e
