// Package meta is the node's small metadata store: one bbolt file holding
// topic configs, committed consumer offsets, bridge cursors and producer-id
// state. Every write is one short bbolt transaction, fsynced before it returns.
// The record stream itself never goes here.
package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrNotFound is returned when a key is absent.
var ErrNotFound = errors.New("meta: not found")

// Bucket names. Offsets hold one nested bucket per group so that a group's
// offsets are one prefix-free range and deleting a group is one call.
var (
	bucketTopics    = []byte("topics")    // topic name → JSON TopicRecord
	bucketOffsets   = []byte("offsets")   // group → {offsetKey → JSON OffsetCommit}
	bucketCursors   = []byte("cursors")   // cursor name → int64 big-endian
	bucketProducers = []byte("producers") // keyNextProducerID → int64 big-endian
	bucketValues    = []byte("values")    // key → opaque bytes

	keyNextProducerID = []byte("next_id")
)

var allBuckets = [][]byte{bucketTopics, bucketOffsets, bucketCursors, bucketProducers, bucketValues}

// openTimeout bounds the wait for bbolt's file lock so that opening a file
// another process (or another Store in this process) holds fails instead
// of hanging forever.
var openTimeout = 2 * time.Second

// Store is the typed API over the bbolt file. It is safe for concurrent use:
// bbolt serialises writers and lets readers run in parallel.
type Store struct {
	db *bolt.DB
}

// Open opens or creates the bbolt file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("meta: %s is locked by another process (another daemon is using this data directory; stop it or pick another data dir)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("meta: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("meta: init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("meta: close: %w", err)
	}
	return nil
}

// update runs fn in one read-write transaction, fsynced before it returns;
// an error names the operation and its key ("meta: put cursor \"c\": ...").
func (s *Store) update(op, key string, fn func(*bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return fmt.Errorf("meta: %s %q: %w", op, key, err)
	}
	return nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.db.Path() }

// TopicRecord is a topic's persisted definition. Config is opaque to this
// package (the storage package stores its LogConfig as JSON).
type TopicRecord struct {
	Name       string `json:"name"`
	Partitions int32  `json:"partitions"`
	Config     []byte `json:"config"`
	CreatedMs  int64  `json:"created_ms"`
	// Placed records that only the Hosted partitions are stored here (a
	// broker keeps the replicas it is assigned); otherwise all are.
	Placed bool    `json:"placed,omitempty"`
	Hosted []int32 `json:"hosted,omitempty"`
}

// PutTopic creates or replaces a topic record.
func (s *Store) PutTopic(t TopicRecord) error {
	if t.Name == "" {
		return errors.New("meta: put topic: empty name")
	}
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("meta: put topic %q: encode: %w", t.Name, err)
	}
	return s.update("put topic", t.Name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTopics).Put([]byte(t.Name), v)
	})
}

// Topic returns one topic record or ErrNotFound.
func (s *Store) Topic(name string) (TopicRecord, error) {
	var t TopicRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTopics).Get([]byte(name))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &t)
	})
	if err != nil {
		return TopicRecord{}, fmt.Errorf("meta: topic %q: %w", name, err)
	}
	return t, nil
}

// DeleteTopic removes a topic record and every committed offset for it.
// Deleting a topic that does not exist is not an error, so a crash halfway
// through a topic deletion can simply be retried.
func (s *Store) DeleteTopic(name string) error {
	return s.update("delete topic", name, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTopics).Delete([]byte(name)); err != nil {
			return fmt.Errorf("delete record: %w", err)
		}
		prefix := topicPrefix(name)
		offsets := tx.Bucket(bucketOffsets)
		var emptied [][]byte
		err := offsets.ForEachBucket(func(group []byte) error {
			gb := offsets.Bucket(group)
			c := gb.Cursor()
			// Deleting through the cursor keeps its position valid; Seek
			// again after each delete to stay robust across bbolt versions.
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
				if err := c.Delete(); err != nil {
					return fmt.Errorf("delete offset of group %q: %w", group, err)
				}
			}
			if k, _ := gb.Cursor().First(); k == nil {
				emptied = append(emptied, bytes.Clone(group))
			}
			return nil
		})
		if err != nil {
			return err
		}
		// A group whose only offsets were for this topic no longer has
		// committed offsets, so it leaves Groups().
		for _, g := range emptied {
			if err := offsets.DeleteBucket(g); err != nil {
				return fmt.Errorf("drop empty group %q: %w", g, err)
			}
		}
		return nil
	})
}

// Topics lists all topic records sorted by name.
func (s *Store) Topics() ([]TopicRecord, error) {
	var out []TopicRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		// bbolt keeps keys in byte order, which is Go's string order.
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			var t TopicRecord
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode topic %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: list topics: %w", err)
	}
	return out, nil
}

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

// Offset keys are [uint16 len(topic)][topic][int32 partition], all
// big-endian. The length prefix makes "every partition of topic t" an exact
// key prefix whatever bytes topic names contain.
func topicPrefix(topic string) []byte {
	b := make([]byte, 2, 2+len(topic)+4)
	binary.BigEndian.PutUint16(b, uint16(len(topic)))
	return append(b, topic...)
}

func offsetKey(tp TopicPartition) []byte {
	return binary.BigEndian.AppendUint32(topicPrefix(tp.Topic), uint32(tp.Partition))
}

func parseOffsetKey(k []byte) (TopicPartition, error) {
	if len(k) < 6 {
		return TopicPartition{}, fmt.Errorf("offset key of %d bytes", len(k))
	}
	n := int(binary.BigEndian.Uint16(k))
	if len(k) != 2+n+4 {
		return TopicPartition{}, fmt.Errorf("offset key of %d bytes for a %d-byte topic", len(k), n)
	}
	return TopicPartition{
		Topic:     string(k[2 : 2+n]),
		Partition: int32(binary.BigEndian.Uint32(k[2+n:])),
	}, nil
}

func checkTopicName(topic string) error {
	if topic == "" || len(topic) > 0xffff {
		return fmt.Errorf("topic name of %d bytes", len(topic))
	}
	return nil
}

// CommitOffsets stores offsets for a group in one transaction.
func (s *Store) CommitOffsets(group string, offsets map[TopicPartition]OffsetCommit) error {
	if group == "" {
		return errors.New("meta: commit offsets: empty group")
	}
	if len(offsets) == 0 {
		return nil
	}
	type kv struct{ k, v []byte }
	puts := make([]kv, 0, len(offsets))
	// Encode outside the transaction: the write lock is held only for puts.
	for tp, oc := range offsets {
		if err := checkTopicName(tp.Topic); err != nil {
			return fmt.Errorf("meta: commit offsets of group %q: %w", group, err)
		}
		v, err := json.Marshal(oc)
		if err != nil {
			return fmt.Errorf("meta: commit offsets of group %q: encode: %w", group, err)
		}
		puts = append(puts, kv{offsetKey(tp), v})
	}
	return s.update("commit offsets of group", group, func(tx *bolt.Tx) error {
		gb, err := tx.Bucket(bucketOffsets).CreateBucketIfNotExists([]byte(group))
		if err != nil {
			return fmt.Errorf("group bucket: %w", err)
		}
		for _, p := range puts {
			if err := gb.Put(p.k, p.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// FetchOffsets returns all committed offsets of a group (empty map if none).
func (s *Store) FetchOffsets(group string) (map[TopicPartition]OffsetCommit, error) {
	out := make(map[TopicPartition]OffsetCommit)
	err := s.db.View(func(tx *bolt.Tx) error {
		gb := tx.Bucket(bucketOffsets).Bucket([]byte(group))
		if gb == nil {
			return nil
		}
		return gb.ForEach(func(k, v []byte) error {
			tp, err := parseOffsetKey(k)
			if err != nil {
				return err
			}
			var oc OffsetCommit
			if err := json.Unmarshal(v, &oc); err != nil {
				return fmt.Errorf("decode offset of %s/%d: %w", tp.Topic, tp.Partition, err)
			}
			out[tp] = oc
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: fetch offsets of group %q: %w", group, err)
	}
	return out, nil
}

// DeleteOffsets removes some committed offsets of a group (the Kafka
// OffsetDelete API). Absent partitions are ignored; a group left without
// offsets disappears from Groups.
func (s *Store) DeleteOffsets(group string, partitions []TopicPartition) error {
	return s.update("delete offsets of group", group, func(tx *bolt.Tx) error {
		offsets := tx.Bucket(bucketOffsets)
		gb := offsets.Bucket([]byte(group))
		if gb == nil {
			return nil
		}
		for _, tp := range partitions {
			if err := gb.Delete(offsetKey(tp)); err != nil {
				return err
			}
		}
		if k, _ := gb.Cursor().First(); k == nil {
			return offsets.DeleteBucket([]byte(group))
		}
		return nil
	})
}

// DeleteGroup removes a group's committed offsets.
func (s *Store) DeleteGroup(group string) error {
	return s.update("delete group", group, func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketOffsets).DeleteBucket([]byte(group))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Groups lists groups that have committed offsets, sorted.
func (s *Store) Groups() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOffsets).ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("meta: list groups: %w", err)
	}
	return out, nil
}

func putInt64(b *bolt.Bucket, key []byte, v int64) error {
	return b.Put(key, binary.BigEndian.AppendUint64(nil, uint64(v)))
}

func getInt64(b *bolt.Bucket, key []byte) (int64, bool, error) {
	v := b.Get(key)
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("value of %q is %d bytes, want 8", key, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// PutCursor stores a named position (bridge cursors: "<edge>/<topic>/<partition>").
func (s *Store) PutCursor(name string, offset int64) error {
	if name == "" {
		return errors.New("meta: put cursor: empty name")
	}
	return s.update("put cursor", name, func(tx *bolt.Tx) error {
		return putInt64(tx.Bucket(bucketCursors), []byte(name), offset)
	})
}

// Cursor returns a named position; ok is false if never stored.
func (s *Store) Cursor(name string) (offset int64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		offset, ok, err = getInt64(tx.Bucket(bucketCursors), []byte(name))
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("meta: cursor %q: %w", name, err)
	}
	return offset, ok, nil
}

// Cursors returns every cursor whose name starts with prefix ("" for all),
// so a bridge can find all its partitions' positions at start-up.
func (s *Store) Cursors(prefix string) (map[string]int64, error) {
	out := make(map[string]int64)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCursors).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if len(v) != 8 {
				return fmt.Errorf("cursor %q is %d bytes, want 8", k, len(v))
			}
			out[string(k)] = int64(binary.BigEndian.Uint64(v))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("meta: cursors %q: %w", prefix, err)
	}
	return out, nil
}

// DeleteCursor forgets a named position; deleting an absent one is no error.
func (s *Store) DeleteCursor(name string) error {
	return s.update("delete cursor", name, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCursors).Delete([]byte(name))
	})
}

// NextProducerID allocates a new, never reused producer id (persistent counter).
// Ids start at 1; the counter is fsynced before the id is returned, so a
// crash can skip ids but never hand one out twice.
func (s *Store) NextProducerID() (int64, error) {
	var id int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProducers)
		last, _, err := getInt64(b, keyNextProducerID)
		if err != nil {
			return err
		}
		id = last + 1
		return putInt64(b, keyNextProducerID, id)
	})
	if err != nil {
		return 0, fmt.Errorf("meta: next producer id: %w", err)
	}
	return id, nil
}

// PutValue and Value keep small opaque values (node identity and the like)
// under a string key in a general bucket.
func (s *Store) PutValue(key string, value []byte) error {
	if key == "" {
		return errors.New("meta: put value: empty key")
	}
	if value == nil {
		// bbolt stores nil as empty; make that explicit so Value never
		// confuses "stored empty" with "absent".
		value = []byte{}
	}
	return s.update("put value", key, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketValues).Put([]byte(key), value)
	})
}

// Value returns the value under key or ErrNotFound.
func (s *Store) Value(key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketValues).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		// bbolt's slices are only valid inside the transaction.
		out = bytes.Clone(v)
		if out == nil {
			out = []byte{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("meta: value %q: %w", key, err)
	}
	return out, nil
}

// Values returns every value whose key starts with prefix, keys sorted.
func (s *Store) Values(prefix string) (keys []string, values [][]byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketValues).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			keys = append(keys, string(k))
			values = append(values, append([]byte{}, v...))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("meta: values %q: %w", prefix, err)
	}
	return keys, values, nil
}

// DeleteValue removes key; deleting an absent key is no error.
func (s *Store) DeleteValue(key string) error {
	return s.update("delete value", key, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketValues).Delete([]byte(key))
	})
}
