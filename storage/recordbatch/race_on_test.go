//go:build race

package recordbatch

// raceEnabled lets tests skip work that only the race detector makes slow
// (decoding 64 MiB through instrumented codecs) without losing the check
// in plain runs.
const raceEnabled = true
