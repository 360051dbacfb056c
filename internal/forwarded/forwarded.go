// Package forwarded is the identity a bridge forwards an edge partition
// under, shared by the bridge that sends and the core that receives: one
// stable producer id per (edge, partition), and each record's sequence is its
// edge offset, so a core appending in storage.SequenceFromSource mode drops
// anything it already has, even when the bridge re-batches after a crash.
// Storage knows nothing of edges; this package is where that mapping lives.
package forwarded

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// producerBit marks producer ids derived from an edge identity. The core's
// own InitProducerId counter never reaches it.
const producerBit = int64(1) << 62

// ProducerID is the stable producer id of one edge partition.
func ProducerID(edgeID string, edgePartition int32) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", edgeID, edgePartition)
	return producerBit | int64(h.Sum64()&uint64(producerBit-1))
}

// IsProducerID reports whether pid came from ProducerID.
func IsProducerID(pid int64) bool { return pid > 0 && pid&producerBit != 0 }

// Sequence maps an edge offset to the sequence a bridge sends.
func Sequence(edgeOffset int64) int32 { return int32(edgeOffset % (math.MaxInt32 + 1)) }

// Sequences is the AppendOptions.Sequences of a core that accepts forwarded
// producers: their ids append in SequenceFromSource mode, every other id in
// Kafka's per-batch mode.
func Sequences(pid int64) storage.SequenceMode {
	if IsProducerID(pid) {
		return storage.SequenceFromSource
	}
	return storage.SequencePerBatch
}

// EdgeIDKey is where an edge keeps its identity in its metadata store; the
// gateway and the bridge read the same key.
const EdgeIDKey = "edge/id"

// ResolveEdgeID returns the configured id, else the stored one, else a new
// random id that is stored before it is used, so an edge keeps one identity
// across restarts (its forwarded producer ids depend on it).
func ResolveEdgeID(store meta.ValueStore, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	v, err := store.Value(EdgeIDKey)
	if err == nil && len(v) > 0 {
		return string(v), nil
	}
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return "", fmt.Errorf("read edge id: %w", err)
	}
	var r [6]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("generate edge id: %w", err)
	}
	id := "edge-" + hex.EncodeToString(r[:])
	if err := store.PutValue(EdgeIDKey, []byte(id)); err != nil {
		return "", fmt.Errorf("store edge id: %w", err)
	}
	return id, nil
}
