//go:build race

package tnef

// raceEnabled thins the slowest exhaustive tests, which the race detector slows tenfold.
const raceEnabled = true
