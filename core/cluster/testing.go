package cluster

import (
	"fmt"
	"time"
)

// LoopbackConfig is broker id's configuration in a cluster of len(serf) brokers on 127.0.0.1,
// for tests: serf holds every broker's gossip address (serf[id-1] is this one's) and port hands
// out free ports for Raft and the RPC. Every in-process test cluster uses this one set of
// timings: short, to keep suites fast, but not so short that a 2-core machine busy with -race
// runs makes Raft or Serf see a false failure. Callers adjust the result as a test needs.
func LoopbackConfig(id int32, dataDir string, serf []string, port func() int) Config {
	return Config{
		BrokerID:                 id,
		DataDir:                  dataDir,
		KafkaAddr:                fmt.Sprintf("127.0.0.1:%d", 19000+id), // replaced by a broker's own
		RaftAddr:                 fmt.Sprintf("127.0.0.1:%d", port()),
		RPCAddr:                  fmt.Sprintf("127.0.0.1:%d", port()),
		SerfAddr:                 serf[id-1],
		Join:                     serf,
		BootstrapExpect:          len(serf),
		MaxVoters:                3,
		OffsetsPartitions:        3,
		OffsetsReplicationFactor: int16(min(3, len(serf))),
		ReconcileInterval:        200 * time.Millisecond,
		AbsentGrace:              5 * time.Second,
		Raft: RaftTimings{
			HeartbeatTimeout:   time.Second,
			ElectionTimeout:    time.Second,
			LeaderLeaseTimeout: 500 * time.Millisecond,
			// Small, so restarts go through a file snapshot.
			SnapshotThreshold: 16,
			TrailingLogs:      4,
		},
		Gossip: GossipTimings{
			ProbeInterval:           400 * time.Millisecond,
			ProbeTimeout:            300 * time.Millisecond,
			GossipInterval:          50 * time.Millisecond,
			SuspicionMult:           3,
			SuspicionMaxTimeoutMult: 2,
			ReconnectInterval:       500 * time.Millisecond,
		},
	}
}
