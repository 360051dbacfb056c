package meta

// Store holds every kind of metadata in one bbolt file; its users each take
// the small part they need, so a group coordinator cannot move a bridge
// cursor and a test can stand a fault in front of one part.

// OffsetStore keeps consumer groups' committed offsets.
type OffsetStore interface {
	CommitOffsets(group string, offsets map[TopicPartition]OffsetCommit) error
	FetchOffsets(group string) (map[TopicPartition]OffsetCommit, error)
	DeleteOffsets(group string, partitions []TopicPartition) error
	DeleteGroup(group string) error
	Groups() ([]string, error)
}

// CursorStore keeps named positions in logs (a bridge's per-partition
// cursor, an aggregator's input offsets).
type CursorStore interface {
	PutCursor(name string, offset int64) error
	Cursor(name string) (offset int64, ok bool, err error)
	Cursors(prefix string) (map[string]int64, error)
	DeleteCursor(name string) error
}

// ValueStore keeps small opaque values under string keys (node identity,
// producer epochs, markers); Value returns ErrNotFound for an absent key.
type ValueStore interface {
	PutValue(key string, value []byte) error
	Value(key string) ([]byte, error)
	Values(prefix string) (keys []string, values [][]byte, err error)
	DeleteValue(key string) error
}

var (
	_ OffsetStore = (*Store)(nil)
	_ CursorStore = (*Store)(nil)
	_ ValueStore  = (*Store)(nil)
)
