// Package layering holds the test that keeps gatewayd's packages layered
// (docs/architecture.md): a package imports only packages of a lower
// layer, and only cmd/gatewayd imports config. It has no code.
package layering
