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

// GossipTimings are a test cluster's Serf timings.
type GossipTimings struct {
	ProbeInterval, ProbeTimeout, GossipInterval time.Duration
	SuspicionMult, SuspicionMaxTimeoutMult      int
	ReconnectInterval                           time.Duration
}

// Gossip is the test clusters' Serf timings: a broker killed or cut off is
// declared failed in about a second, and under -short in about a quarter
// of that, since the failover tests wait for it once or twice each.
// (In-process clusters outside -short keep core/cluster.LoopbackConfig's
// slightly slower set.)
func Gossip() GossipTimings {
	if short() {
		return GossipTimings{ProbeInterval: 150 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond, GossipInterval: 30 * time.Millisecond,
			SuspicionMult: 2, SuspicionMaxTimeoutMult: 2, ReconnectInterval: 200 * time.Millisecond}
	}
	return GossipTimings{ProbeInterval: 300 * time.Millisecond, ProbeTimeout: 200 * time.Millisecond, GossipInterval: 50 * time.Millisecond,
		SuspicionMult: 2, SuspicionMaxTimeoutMult: 2, ReconnectInterval: 500 * time.Millisecond}
}

// yaml is the timings as the "gossip:" map of a broker's YAML config.
func (g GossipTimings) yaml() string {
	return fmt.Sprintf("{probe_interval: %v, probe_timeout: %v, gossip_interval: %v, suspicion_mult: %d, suspicion_max_timeout_mult: %d, reconnect_interval: %v}",
		g.ProbeInterval, g.ProbeTimeout, g.GossipInterval, g.SuspicionMult, g.SuspicionMaxTimeoutMult, g.ReconnectInterval)
}

// short is testing.Short for a caller that may not be a test (the
// benchmarks use CoreBrokerConfig): false outside a parsed test binary.
func short() bool {
	return testing.Testing() && flag.Parsed() && testing.Short()
}

// Watch is how long a test watches for something that must not happen
// (a broker admitted with the wrong key, data deleted too early): d in the
// full suite, a quarter of it under -short, where a test only checks that
// the guard is there at all.
func Watch(d time.Duration) time.Duration {
	if short() {
		return d / 4
	}
	return d
}
