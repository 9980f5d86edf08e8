//go:build !race

package vanemqcmd

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = false
