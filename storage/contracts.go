package storage

import "context"

// The contracts at the storage boundary. Core, edge and bridge depend on
// these small interfaces rather than on *Log, in the way hashicorp/raft's
// LogStore and nats-server's StreamStore stand in front of their stores:
// *Log is the implementation, and a test can put a fault in front of it.

// PartitionLog is one partition's record log as a writer sees it.
type PartitionLog interface {
	// Append writes concatenated RecordBatch v2 batches and says where they
	// landed; opts choose durability, offsets and producer checks. It may
	// rewrite the batches' offsets in place but keeps no reference to them:
	// the caller may reuse the buffer once it returns.
	Append(ctx context.Context, batches []byte, opts AppendOptions) (AppendResult, error)
	// Read returns whole batches from offset from, at least one, up to
	// maxBytes, none at or past upTo (-1: the log end).
	Read(from int64, maxBytes int, upTo int64) ([]byte, error)
	// WaitSynced returns once every offset below offset is fsynced.
	WaitSynced(ctx context.Context, offset int64) error
	// NextOffset is the offset the next record will get.
	NextOffset() int64
}

// LogTail is one partition's record log as a reader that follows its end
// sees it: a bridge, a verifier, an aggregator. It reads what is synced and
// waits on the two signals for more.
type LogTail interface {
	Read(from int64, maxBytes int, upTo int64) ([]byte, error)
	// StartOffset is the first offset retention has left.
	StartOffset() int64
	NextOffset() int64
	// SyncedOffset is the end of what is on disk.
	SyncedOffset() int64
	// Changed is closed at the next append (or truncation, or close).
	Changed() <-chan struct{}
	// Synced is closed when SyncedOffset next moves.
	Synced() <-chan struct{}
	// Size is the bytes the log holds, for estimates of what is left.
	Size() int64
}

var (
	_ PartitionLog = (*Log)(nil)
	_ LogTail      = (*Log)(nil)
)

// SequenceMode is how an idempotent producer numbers its records. The caller
// of Append picks it per producer (AppendOptions.Sequences); storage only
// enforces it and remembers it per producer across restarts.
type SequenceMode uint8

const (
	// SequencePerBatch is Kafka's idempotent producer: each batch continues
	// the sequence of the one before; a retry of one of the last 5 batches
	// is a duplicate, any other gap an error; a new epoch restarts at 0.
	SequencePerBatch SequenceMode = iota
	// SequenceFromSource numbers each record by its offset in the producer's
	// own source log (mod 2^31), as a store-and-forward bridge does: records
	// at or below the highest appended are re-sends and dropped, even when
	// the producer re-batched them; a gap is accepted only under a newer
	// epoch (the producer declares it skipped records on purpose).
	SequenceFromSource
)
