//go:build !race

package udp

// raceEnabled: the race detector is off.
const raceEnabled = false
