//go:build race

// Package race says whether the race detector is built in. Tests that
// only the detector makes slow, or whose parallelism it changes, ask it
// (the standard library keeps the same constant in its internal/race).
package race

// Enabled is true when built with -race.
const Enabled = true
