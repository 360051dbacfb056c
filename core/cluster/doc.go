// Package cluster owns the core's cluster metadata: Serf membership, a Raft group (bbolt log store,
// file snapshots, TCP transport) and the metadata state machine that places partitions, tracks leaders,
// leader epochs and ISRs, and reassigns leadership when a broker fails.
package cluster

import (
	_ "github.com/hashicorp/raft"
	_ "github.com/hashicorp/serf/serf"
	_ "go.etcd.io/bbolt"
)
