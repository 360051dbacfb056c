package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// ErrKeyNotFound is what RaftStore.Get and GetUint64 return for a missing key. The raft library
// recognises a missing key by this exact message ("not found"), so it must not be wrapped or
// reworded.
var ErrKeyNotFound = errors.New("not found")

var (
	bucketLogs   = []byte("raft-logs")
	bucketStable = []byte("raft-stable")
)

// RaftStore is a raft.LogStore and raft.StableStore kept in one bbolt file. Log entries are keyed by
// their big-endian index so bbolt's ordered cursor gives First/LastIndex directly; every write is
// one fsynced bbolt transaction, which is what Raft assumes when it counts a vote or an append.
type RaftStore struct {
	db *bolt.DB
}

var (
	_ raft.LogStore    = (*RaftStore)(nil)
	_ raft.StableStore = (*RaftStore)(nil)
)

// OpenRaftStore opens (creating if needed) the bbolt file at path.
func OpenRaftStore(path string) (*RaftStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("raft store: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("raft store: create buckets: %w", err)
	}
	return &RaftStore{db: db}, nil
}

// Close closes the bbolt file.
func (s *RaftStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raft store: close: %w", err)
	}
	return nil
}

func indexKey(i uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], i)
	return k[:]
}

// FirstIndex returns the lowest stored index, 0 when the log is empty.
func (s *RaftStore) FirstIndex() (uint64, error) { return s.endIndex("first", (*bolt.Cursor).First) }

// LastIndex returns the highest stored index, 0 when the log is empty.
func (s *RaftStore) LastIndex() (uint64, error) { return s.endIndex("last", (*bolt.Cursor).Last) }

// endIndex is the index of the log's key at one end, which seek (a
// cursor's First or Last) finds; 0 when the log is empty.
func (s *RaftStore) endIndex(end string, seek func(*bolt.Cursor) (k, v []byte)) (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := seek(tx.Bucket(bucketLogs).Cursor()); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("raft store: %s index: %w", end, err)
	}
	return idx, nil
}

// GetLog reads the entry at index into out; raft.ErrLogNotFound (unwrapped, raft compares it) when
// there is none.
func (s *RaftStore) GetLog(index uint64, out *raft.Log) error {
	var found bool
	var derr error
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(indexKey(index))
		if v == nil {
			return nil
		}
		found = true
		// v is only valid inside the transaction: decodeLog copies.
		derr = decodeLog(v, out)
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store: get log %d: %w", index, err)
	}
	if !found {
		return raft.ErrLogNotFound
	}
	if derr != nil {
		return fmt.Errorf("raft store: decode log %d: %w", index, derr)
	}
	out.Index = index
	return nil
}

// StoreLog stores one entry.
func (s *RaftStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores entries in one transaction (one fsync for the batch).
func (s *RaftStore) StoreLogs(logs []*raft.Log) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for _, l := range logs {
			if err := b.Put(indexKey(l.Index), encodeLog(l)); err != nil {
				return fmt.Errorf("put %d: %w", l.Index, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store: store logs: %w", err)
	}
	return nil
}

// DeleteRange removes entries min..max inclusive.
func (s *RaftStore) DeleteRange(minIdx, maxIdx uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLogs).Cursor()
		for k, _ := c.Seek(indexKey(minIdx)); k != nil; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k) > maxIdx {
				break
			}
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raft store: delete range %d-%d: %w", minIdx, maxIdx, err)
	}
	return nil
}

// Set stores a stable key.
func (s *RaftStore) Set(key, val []byte) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
	if err != nil {
		return fmt.Errorf("raft store: set %q: %w", key, err)
	}
	return nil
}

// Get returns a stable key's value, or ErrKeyNotFound.
func (s *RaftStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketStable).Get(key); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raft store: get %q: %w", key, err)
	}
	if out == nil {
		return nil, ErrKeyNotFound
	}
	return out, nil
}

// SetUint64 stores a stable key holding a number.
func (s *RaftStore) SetUint64(key []byte, val uint64) error { return s.Set(key, indexKey(val)) }

// GetUint64 returns a number stored with SetUint64, or 0 and ErrKeyNotFound.
func (s *RaftStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("raft store: key %q holds %d bytes, not a uint64", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// Log entry layout: version(1) term(8) type(1) appendedAt-unix-nanos(8) len(data)(4) data
// len(ext)(4) ext. The version byte lets a later layout coexist with entries already on disk.
const logEncodingV1 = 1

func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 1+8+1+8+4+len(l.Data)+4+len(l.Extensions))
	b = append(b, logEncodingV1)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	b = append(b, l.Extensions...)
	return b
}

func decodeLog(b []byte, l *raft.Log) error {
	if len(b) < 1+8+1+8+4 || b[0] != logEncodingV1 {
		return errors.New("bad header")
	}
	l.Term = binary.BigEndian.Uint64(b[1:])
	l.Type = raft.LogType(b[9])
	if at := int64(binary.BigEndian.Uint64(b[10:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	} else {
		l.AppendedAt = time.Time{}
	}
	rest := b[18:]
	next := func() ([]byte, error) {
		if len(rest) < 4 {
			return nil, errors.New("short length")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(len(rest)) < uint64(n) {
			return nil, errors.New("short field")
		}
		var out []byte
		if n > 0 {
			out = append([]byte{}, rest[:n]...)
		}
		rest = rest[n:]
		return out, nil
	}
	var err error
	if l.Data, err = next(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if l.Extensions, err = next(); err != nil {
		return fmt.Errorf("extensions: %w", err)
	}
	return nil
}
