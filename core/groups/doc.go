// Package groups is the core broker's consumer-group coordinator: Kafka's
// classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
// committed offsets (OffsetCommit, OffsetFetch, OffsetDelete) kept in the
// node's metadata store, and the group admin APIs (DescribeGroups,
// ListGroups, DeleteGroups).
//
// Group membership lives in memory, as in Kafka a coordinator restart makes
// every member rejoin; committed offsets are durable in meta.Store, and
// groups that have offsets reappear as Empty groups after a restart.
//
// One file per Kafka API, named by key, so "where is SyncGroup handled?" has
// one answer; group.go holds the state machine they share.
package groups
