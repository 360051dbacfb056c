package storage

import (
	"context"
	"errors"
	"log/slog"
)

// Errors callers branch on.
var (
	ErrOffsetOutOfRange     = errors.New("storage: offset out of range")
	ErrBatchTooLarge        = errors.New("storage: batch too large")
	ErrReadOnly             = errors.New("storage: log is read-only after corruption")
	ErrClosed               = errors.New("storage: log closed")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrInvalidProducerEpoch = errors.New("storage: stale producer epoch")
	ErrDiskFull             = errors.New("storage: disk full")
)

// AppendOptions tune one append.
type AppendOptions struct {
	// Durable makes Append wait until an fsync covers the batch.
	Durable bool
	// LeaderEpoch, if >= 0, is stamped into each batch's partition leader epoch.
	LeaderEpoch int32
	// KeepOffsets appends batches that already carry their offsets (a
	// replica copying its leader); each must start at or after NextOffset.
	KeepOffsets bool
	// Idempotent checks producer id/epoch/sequence: a retry of one of the
	// producer's last 5 batches is answered with the original offsets and not
	// appended again (AppendResult.Duplicate); a gap is ErrOutOfOrderSequence.
	Idempotent bool
}

// AppendResult says where appended batches landed.
type AppendResult struct {
	BaseOffset int64 // offset of the first record
	LastOffset int64 // offset of the last record
	// LogAppendTime is the broker time used for the append (ms).
	LogAppendTime int64
	// Duplicate is set when an idempotent retry was recognised: nothing was
	// written and the offsets are those of the original append.
	Duplicate bool
}

// Log is one partition: a directory of segments.
type Log struct {
	dir    string
	cfg    LogConfig
	logger *slog.Logger
}

// OpenLog opens or creates the log in dir, recovering the active segment.
func OpenLog(dir string, cfg LogConfig, logger *slog.Logger) (*Log, error) {
	panic("not implemented")
}

// Append writes one or more concatenated RecordBatch v2 batches (as a
// producer sends them: base offset ignored and reassigned unless KeepOffsets).
// Every batch is CRC-checked; nothing is written if any batch is bad.
func (l *Log) Append(ctx context.Context, batches []byte, opts AppendOptions) (AppendResult, error) {
	panic("not implemented")
}

// Read returns raw bytes of whole batches starting with the batch that holds
// offset from, up to maxBytes (at least one whole batch is returned even if
// larger, as Kafka does), never including batches at or beyond upTo (pass -1
// for the log end). Reading at NextOffset returns no bytes and no error; an
// offset outside [StartOffset, NextOffset] is ErrOffsetOutOfRange.
func (l *Log) Read(from int64, maxBytes int, upTo int64) ([]byte, error) {
	panic("not implemented")
}

// Changed returns a channel closed at the next append or truncation, for long polls.
func (l *Log) Changed() <-chan struct{} { panic("not implemented") }

// StartOffset is the first offset still held (log start offset).
func (l *Log) StartOffset() int64 { panic("not implemented") }

// NextOffset is the offset the next record will get (log end offset).
func (l *Log) NextOffset() int64 { panic("not implemented") }

// SyncedOffset is the offset below which everything is fsynced.
func (l *Log) SyncedOffset() int64 { panic("not implemented") }

// OffsetForTime returns the first offset whose batch max timestamp is >= ts
// (ms), and false if there is none.
func (l *Log) OffsetForTime(ts int64) (int64, bool, error) { panic("not implemented") }

// Size is the total bytes of all segments.
func (l *Log) Size() int64 { panic("not implemented") }

// Sync forces an fsync of everything appended so far.
func (l *Log) Sync() error { panic("not implemented") }

// TruncateTo removes every record at or after offset (replica divergence).
func (l *Log) TruncateTo(offset int64) error { panic("not implemented") }

// SetRetentionFloor stops retention from deleting segments that hold any
// offset >= floor (the edge keeps what the bridge has not forwarded).
func (l *Log) SetRetentionFloor(floor int64) { panic("not implemented") }

// ApplyRetention deletes whole segments past the age or size bound, never the
// active one, and returns how many records were removed.
func (l *Log) ApplyRetention() (int64, error) { panic("not implemented") }

// DropOldestSegment removes the oldest segment regardless of retention floor
// (disk budget "drop-oldest"), returning the records removed; it never removes
// the active segment.
func (l *Log) DropOldestSegment() (int64, error) { panic("not implemented") }

// Compact rewrites sealed segments of a compacted log so that only the newest
// record per key survives; tombstones older than TombstoneRetention go too.
func (l *Log) Compact() error { panic("not implemented") }

// ReadOnlyReason is non-nil when recovery found mid-log corruption.
func (l *Log) ReadOnlyReason() error { panic("not implemented") }

// Close flushes and closes the log.
func (l *Log) Close() error { panic("not implemented") }

// Delete closes the log and removes its directory.
func (l *Log) Delete() error { panic("not implemented") }
