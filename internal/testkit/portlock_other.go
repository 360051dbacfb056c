//go:build !unix

package testkit

// claimPort has no cross-process registry here: ports are only unique
// within this process.
func claimPort(int) bool { return true }
