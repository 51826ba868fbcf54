//go:build race

package engineio

// raceEnabled: the race detector makes sync.Pool drop a quarter of what is
// put back, so allocation counts are higher.
const raceEnabled = true
