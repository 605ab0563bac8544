//go:build race

package udp

// raceEnabled: the race detector is on. sync.Pool then drops some of what
// is put back, so allocation counts of pooled paths mean nothing.
const raceEnabled = true
