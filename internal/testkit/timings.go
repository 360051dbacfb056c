package testkit

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

// RaftTimings are the Raft timeouts every test cluster uses, in-process
// (core/cluster and core/server tests) and as processes (StartCoreCluster,
// the benchmarks).
type RaftTimings struct {
	Heartbeat, Election, LeaderLease time.Duration
}

// Raft is the test clusters' Raft timings. The full suite runs with -race
// on loaded CI machines, so there a follower waits a second for its leader
// before it calls an election: a starved leader must not look dead. Under
// -short (the developer's loop on an idle machine) every cluster start and
// every leader failover waits for that timeout, which was most of the
// time of a typical cluster test, so there it is 300 ms.
func Raft() RaftTimings {
	if short() {
		return RaftTimings{Heartbeat: 300 * time.Millisecond, Election: 300 * time.Millisecond, LeaderLease: 150 * time.Millisecond}
	}
	return RaftTimings{Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond}
}

// yaml is the timings as the "raft:" map of a broker's YAML config.
func (r RaftTimings) yaml() string {
	return fmt.Sprintf("{heartbeat_timeout: %v, election_timeout: %v, leader_lease_timeout: %v}", r.Heartbeat, r.Election, r.LeaderLease)
}

// short is testing.Short for a caller that may not be a test (the
// benchmarks use CoreBrokerConfig): false outside a parsed test binary.
func short() bool {
	return testing.Testing() && flag.Parsed() && testing.Short()
}
