//go:build unix

package testkit

import "testing"

// TestPortClaimedAcrossProcesses: a port handed out is locked in the
// machine-wide registry, which another test process (a second open of the
// lock file) cannot take while this one lives.
func TestPortClaimedAcrossProcesses(t *testing.T) {
	t.Parallel()
	p := FreePort(t)
	if claimPort(p) {
		t.Fatalf("port %d was claimed twice", p)
	}
}
