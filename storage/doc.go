// Package storage is Tributary's log engine: partitions as directories of
// RecordBatch v2 segments with sparse offset and time indexes, recovery of a
// torn tail, durability by group commit, retention and compaction, and
// idempotent-producer state derived from the log itself (storage/meta keeps
// the small metadata in bbolt).
//
// Its users depend on the contracts in contracts.go rather than on *Log:
// PartitionLog (Append, Read, WaitSynced, NextOffset) for writers and
// LogTail for readers that follow a log's end; storage/meta offers
// OffsetStore, CursorStore and ValueStore over its one bbolt file.
//
// An idempotent append checks each producer in the SequenceMode its caller
// picks (AppendOptions.Sequences): Kafka's per-batch sequences, or
// sequence = offset in the producer's own source log, which a
// store-and-forward bridge uses (internal/forwarded maps a bridge's producer
// ids to that mode). Log.Append runs in four steps: validate (no lock), then
// under the lock dedupe, assign and write.
//
// Topics owns the logs under one data directory. A topic made with Create
// stores every partition (an edge); one made with CreatePlaced stores only
// the partitions hosted here (a core broker keeps the replicas the cluster
// assigns it), and HostPartition and DropPartition change that set, which
// the topic's record in storage/meta keeps across restarts.
package storage
