//go:build race

package testkit

// raceEnabled says the race detector is on: tests then compute several
// times more, and waiting is no longer what bounds them.
const raceEnabled = true
