// Package meta is the node's small metadata store: one bbolt file holding
// topic configs, committed consumer offsets, bridge cursors and producer-id
// state. Every write is one short bbolt transaction, fsynced before it returns.
// The record stream itself never goes here.
package meta

import (
	"errors"
)

// ErrNotFound is returned when a key is absent.
var ErrNotFound = errors.New("meta: not found")

// Store is the typed API over the bbolt file.
type Store struct{}

// Open opens or creates the bbolt file at path.
func Open(path string) (*Store, error) { panic("not implemented") }

// Close closes the file.
func (s *Store) Close() error { panic("not implemented") }

// TopicRecord is a topic's persisted definition. Config is opaque to this
// package (the storage package stores its LogConfig as JSON).
type TopicRecord struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Config     []byte `json:"config"`
	CreatedMs  int64  `json:"created_ms"`
}

// PutTopic creates or replaces a topic record.
func (s *Store) PutTopic(t TopicRecord) error { panic("not implemented") }

// DeleteTopic removes a topic record and every committed offset for it.
func (s *Store) DeleteTopic(name string) error { panic("not implemented") }

// Topics lists all topic records sorted by name.
func (s *Store) Topics() ([]TopicRecord, error) { panic("not implemented") }

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// OffsetCommit is a consumer group's committed position in one partition.
type OffsetCommit struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata"`
	CommitMs    int64  `json:"commit_ms"`
}

// CommitOffsets stores offsets for a group in one transaction.
func (s *Store) CommitOffsets(group string, offsets map[TopicPartition]OffsetCommit) error {
	panic("not implemented")
}

// FetchOffsets returns all committed offsets of a group (empty map if none).
func (s *Store) FetchOffsets(group string) (map[TopicPartition]OffsetCommit, error) {
	panic("not implemented")
}

// DeleteGroup removes a group's committed offsets.
func (s *Store) DeleteGroup(group string) error { panic("not implemented") }

// Groups lists groups that have committed offsets, sorted.
func (s *Store) Groups() ([]string, error) { panic("not implemented") }

// PutCursor stores a named position (bridge cursors: "<edge>/<topic>/<partition>").
func (s *Store) PutCursor(name string, offset int64) error { panic("not implemented") }

// Cursor returns a named position; ok is false if never stored.
func (s *Store) Cursor(name string) (offset int64, ok bool, err error) { panic("not implemented") }

// NextProducerID allocates a new, never reused producer id (persistent counter).
func (s *Store) NextProducerID() (int64, error) { panic("not implemented") }

// PutValue and Value keep small opaque values (node identity and the like)
// under a string key in a general bucket.
func (s *Store) PutValue(key string, value []byte) error { panic("not implemented") }

// Value returns the value under key or ErrNotFound.
func (s *Store) Value(key string) ([]byte, error) { panic("not implemented") }
