package stream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BoltStore keeps one aggregation's checkpoint in a bbolt file
// (<dir>/<name>.checkpoint.db). The file lock also stops a second process
// from running the same aggregation on the same data directory.
type BoltStore struct {
	db *bolt.DB
}

var bucketCheckpoint = []byte("checkpoint")
var keyCheckpoint = []byte("latest")

// OpenBoltStore opens (creating) the checkpoint file of aggregation name.
func OpenBoltStore(dir, name string) (*BoltStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint dir: %w", err)
	}
	path := filepath.Join(dir, name+".checkpoint.db")
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open %s: locked by another process (is aggregation %q already running?)", path, name)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCheckpoint)
		return err
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &BoltStore{db: db}, nil
}

// EncodeCheckpoint and DecodeCheckpoint are the checkpoint's stored form
// (CBOR), for stores other than BoltStore (the edge's metadata store).
func EncodeCheckpoint(cp Checkpoint) ([]byte, error) {
	b, err := cbor.Marshal(&cp)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return b, nil
}

// DecodeCheckpoint reverses EncodeCheckpoint.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if err := snapDec.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("decode checkpoint: %w", err)
	}
	return cp, nil
}

// Load returns the last saved checkpoint, if any.
func (s *BoltStore) Load() (Checkpoint, bool, error) {
	var cp Checkpoint
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCheckpoint).Get(keyCheckpoint)
		if v == nil {
			return nil
		}
		found = true
		return snapDec.Unmarshal(v, &cp)
	})
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("decode checkpoint: %w", err)
	}
	return cp, found, nil
}

// Save replaces the checkpoint; it returns once bbolt has fsynced it.
func (s *BoltStore) Save(cp Checkpoint) error {
	b, err := EncodeCheckpoint(cp)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCheckpoint).Put(keyCheckpoint, b)
	})
}

// Close closes the file.
func (s *BoltStore) Close() error { return s.db.Close() }
