// Package status holds the bridge's status snapshot, the JSON an edge
// serves at /api/v1/bridge. It is apart from the bridge so that readers of
// that answer (the tributary CLI) decode the very type the bridge writes
// without linking the bridge and its storage engine.
package status

import "time"

// Status is a snapshot of the bridge.
type Status struct {
	EdgeID     string            `json:"edge_id"`
	Target     string            `json:"target"`
	Partitions []PartitionStatus `json:"partitions"`
}

// PartitionStatus describes one edge partition's forwarding.
type PartitionStatus struct {
	Stream        string `json:"stream"`
	Partition     int32  `json:"partition"`
	CoreTopic     string `json:"core_topic"`
	CorePartition int32  `json:"core_partition"` // -1 until the core was reached
	// Cursor is the next edge offset to forward: the core holds everything below.
	Cursor   int64 `json:"cursor"`
	LogStart int64 `json:"log_start"`
	LogEnd   int64 `json:"log_end"`
	// BacklogRecords are in the edge log but not acknowledged by the core;
	// BacklogBytes estimates their size from the log's average record size.
	BacklogRecords int64 `json:"backlog_records"`
	BacklogBytes   int64 `json:"backlog_bytes"`
	// LastAck is when the core last acknowledged a batch (zero: never).
	LastAck time.Time `json:"last_ack"`
	// LastAckAge is how long records have waited without any
	// acknowledgement; 0 when the partition is caught up.
	LastAckAge time.Duration `json:"last_ack_age"`
	// OldestUnforwarded is the timestamp of the first record not yet on
	// the core (zero when caught up); OldestUnforwardedAge is now minus it.
	OldestUnforwarded    time.Time     `json:"oldest_unforwarded,omitzero"`
	OldestUnforwardedAge time.Duration `json:"oldest_unforwarded_age"`
	// Dropped counts records the edge removed before they were forwarded.
	Dropped int64 `json:"dropped"`
	// TooLarge counts records skipped because the core refuses their size.
	TooLarge  int64  `json:"too_large"`
	Retries   int64  `json:"retries"`
	LastError string `json:"last_error,omitempty"`
}

// Caught reports whether every record in the edge log is on the core.
func (p PartitionStatus) Caught() bool { return p.BacklogRecords == 0 }

// Backlog is the total number of records not yet on the core.
func (s Status) Backlog() int64 {
	var n int64
	for _, p := range s.Partitions {
		n += p.BacklogRecords
	}
	return n
}
