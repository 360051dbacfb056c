package storage

import "errors"

// Errors callers branch on with errors.Is (they come wrapped with context).
var (
	// Appending to and reading a partition log.
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	ErrBatchTooLarge    = errors.New("storage: batch too large")
	ErrReadOnly         = errors.New("storage: log is read-only after corruption")
	ErrClosed           = errors.New("storage: log closed")
	// ErrTruncated ends a wait for an fsync when the log was truncated or
	// reset meanwhile (a replica following a new leader): what it waited
	// for may no longer be in the log.
	ErrTruncated            = errors.New("storage: log truncated while waiting")
	ErrOutOfOrderSequence   = errors.New("storage: out of order sequence number")
	ErrInvalidTimestamp     = errors.New("storage: timestamp outside the allowed window")
	ErrInvalidProducerEpoch = errors.New("storage: stale producer epoch")
	ErrDiskFull             = errors.New("storage: disk full")
	ErrInvalidBatch         = errors.New("storage: invalid record batch")

	// Managing topics and their partitions.
	ErrTopicExists      = errors.New("storage: topic already exists")
	ErrUnknownTopic     = errors.New("storage: unknown topic")
	ErrUnknownPartition = errors.New("storage: unknown partition")
	ErrInvalidTopic     = errors.New("storage: invalid topic name")
	ErrInvalidPartition = errors.New("storage: invalid partition count")
	// ErrNotHosted is a partition of a placed topic that is stored on
	// another broker, not here.
	ErrNotHosted = errors.New("storage: partition not hosted here")
)
