// Package bridge forwards an edge's partition logs to the core through the
// Kafka protocol, exactly once against a Tributary core and at least once
// against any other Kafka cluster.
//
// Every edge partition has one forwarder. It reads fsynced batches from the
// edge log (never buffering the backlog in memory), re-encodes their records
// with edge-id and edge-offset headers, and pipelines produce requests
// (acks=all) on a connection of its own to the core partition's leader. Each
// edge partition sends under a stable producer id derived from the edge id
// (forwarded.ProducerID) with sequence = edge offset, so the core can
// drop whatever it already holds however the bridge re-batches after a crash
// or a broken connection. The cursor (next edge offset to forward) is saved
// in the edge's metadata store only after the core acknowledged, and it is
// the edge log's retention floor.
package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/bridge/status"
	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// EdgeIDKey is where the edge keeps its generated identity in the metadata
// store (the gateway uses the same key).
const EdgeIDKey = forwarded.EdgeIDKey

// Record headers the bridge adds.
const (
	HeaderEdgeID     = "edge-id"
	HeaderEdgeOffset = "edge-offset"
)

// CursorName is the metadata-store name of one edge partition's cursor.
func CursorName(stream string, partition int32) string {
	return fmt.Sprintf("bridge/%s/%d", stream, partition)
}

// Bridge forwards every partition of every edge stream to the core.
type Bridge struct {
	cfg    Config
	codec  int
	edgeID string
	// incarnation is made with the edge's metadata store ("" for a store an
	// earlier version forwarded from); see source.
	incarnation string
	topics      *storage.Topics
	store       Store
	logger      *slog.Logger
	m           *metrics
	admin       *coreAdmin
	sec         linkSecurity // TLS and SASL for every connection to the core
	bucket      *tokenBucket
	start       time.Time

	mu       sync.Mutex
	fwd      map[partKey]*forwarder
	local    map[string]bool  // streams kept on the edge (KeepLocal)
	released map[partKey]bool // their partitions whose retention hold is gone
	running  bool
	// cursorTopicReady: the exactly-once cursor topic exists (txnforward.go).
	cursorTopicReady bool
}

type partKey struct {
	stream    string
	partition int32
}

// Store is the part of the edge's metadata store a bridge uses: its cursors,
// and values for its edge identity, producer epochs and retention marker.
type Store interface {
	meta.CursorStore
	meta.ValueStore
}

// New checks cfg and prepares a bridge over the edge's topics and metadata
// store; Run starts it. reg may be nil (no metrics registered).
func New(cfg Config, topics *storage.Topics, store Store, reg prometheus.Registerer, logger *slog.Logger) (*Bridge, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if topics == nil || store == nil {
		return nil, errors.New("bridge: topics and metadata store are required")
	}
	if logger == nil {
		logger = slog.Default()
	}
	codec, err := recordbatch.ParseCodec(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("bridge: compression: %w", err)
	}
	edgeID, err := forwarded.ResolveEdgeID(store, cfg.EdgeID)
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b := &Bridge{
		cfg:    cfg,
		codec:  codec,
		edgeID: edgeID,
		topics: topics,
		store:  store,
		logger: logger.With("component", "bridge"),
		bucket: newTokenBucket(cfg.BandwidthBytesPerSec, cfg.MaxBatchBytes),
		start:  time.Now(),
		fwd:    map[partKey]*forwarder{},
		local:  map[string]bool{},

		released: map[partKey]bool{},
	}
	if b.m, err = newMetrics(reg, b); err != nil {
		return nil, fmt.Errorf("bridge: register metrics: %w", err)
	}
	if b.sec, err = cfg.security(); err != nil {
		return nil, err
	}
	if err := b.resolveIncarnation(); err != nil { // before holdRetention marks the store
		return nil, err
	}
	if err := b.holdRetention(); err != nil {
		return nil, err
	}
	if b.admin, err = newCoreAdmin(cfg, b.sec); err != nil {
		return nil, err
	}
	return b, nil
}

// incarnationKey keeps, in the edge's metadata store, the random part of
// the name this install forwards under (legacyIncarnation: none).
const incarnationKey = "bridge/incarnation"

const legacyIncarnation = "-"

// resolveIncarnation reads the incarnation, or makes one for a new
// install: a store without bridge state over logs without records. Any
// other keeps forwarding under the edge id alone, so the core still
// recognises its re-sends: a store a bridge of an earlier version
// forwarded from, or a meta.db lost (or repaired) under logs whose records
// the core may already hold.
func (b *Bridge) resolveIncarnation() error {
	v, err := b.store.Value(incarnationKey)
	switch {
	case err == nil:
		b.incarnation = string(v)
		if b.incarnation == legacyIncarnation {
			b.incarnation = ""
		}
		return nil
	case !errors.Is(err, meta.ErrNotFound):
		return fmt.Errorf("bridge: read %s: %w", incarnationKey, err)
	}
	inc := legacyIncarnation
	fresh, err := b.newInstall()
	if err != nil {
		return err
	}
	if fresh {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return fmt.Errorf("bridge: make an incarnation: %w", err)
		}
		inc = hex.EncodeToString(r[:])
	}
	if err := b.store.PutValue(incarnationKey, []byte(inc)); err != nil {
		return fmt.Errorf("bridge: save %s: %w", incarnationKey, err)
	}
	if inc != legacyIncarnation {
		b.incarnation = inc
	}
	return nil
}

// newInstall reports whether the store holds no bridge state and the logs
// no records.
func (b *Bridge) newInstall() (bool, error) {
	if _, err := b.store.Value(heldKey); err == nil {
		return false, nil
	} else if !errors.Is(err, meta.ErrNotFound) {
		return false, fmt.Errorf("bridge: read %s: %w", heldKey, err)
	}
	if cursors, err := b.store.Cursors("bridge/"); err != nil {
		return false, fmt.Errorf("bridge: read cursors: %w", err)
	} else if len(cursors) > 0 {
		return false, nil
	}
	for _, prefix := range []string{"bridge-epoch/", "bridge-core-partition/"} {
		if keys, _, err := b.store.Values(prefix); err != nil {
			return false, fmt.Errorf("bridge: read %s: %w", prefix, err)
		} else if len(keys) > 0 {
			return false, nil
		}
	}
	for _, t := range b.topics.List() {
		for p := range t.Partitions {
			if l, err := b.topics.Partition(t.Name, p); err == nil && l.NextOffset() > 0 {
				return false, nil
			}
		}
	}
	return true, nil
}

// source names this install's forwarded producers (their ids) and, towards
// a Kafka with exactly_once, its transactional cursors: the edge id and the
// incarnation. A gateway re-imaged with the same configured edge_id starts
// again at offset 0; under the old names the core would take its new
// readings for re-sends of old ones and drop them, and the target's cursor
// would skip them.
func (b *Bridge) source() string {
	if b.incarnation == "" {
		return b.edgeID
	}
	return b.edgeID + "#" + b.incarnation
}

// heldKey marks, in the edge's metadata store, that a bridge has held this
// edge's retention since the value's time: every partition created since
// then has been kept whole from its first record.
const heldKey = "bridge/held-since"

// holdRetention keeps every edge record from retention until the core has
// acknowledged it: logs hold from their first byte (storage.HoldRetention)
// and each forwarder moves its log's floor to its cursor. New runs before
// the gateway's retention first runs, so nothing slips through between a
// stream's creation and its forwarder's start.
//
// A partition without a saved cursor starts forwarding at offset 0, so
// whatever its log no longer holds is reported as dropped. Only on the first
// run with a bridge do the partitions already on disk start where their logs
// start: what retention removed before there was a bridge is not a loss of
// the bridge's.
func (b *Bridge) holdRetention() error {
	b.topics.HoldRetention()
	if _, err := b.store.Value(heldKey); err == nil {
		return nil
	} else if !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("bridge: read %s: %w", heldKey, err)
	}
	for _, t := range b.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			l, err := b.topics.Partition(t.Name, p)
			if err != nil {
				continue
			}
			key := CursorName(t.Name, p)
			if _, ok, err := b.store.Cursor(key); err != nil {
				return fmt.Errorf("bridge: read cursor %s: %w", key, err)
			} else if !ok && l.StartOffset() > 0 {
				if err := b.store.PutCursor(key, l.StartOffset()); err != nil {
					return fmt.Errorf("bridge: save cursor %s: %w", key, err)
				}
			}
		}
	}
	if err := b.store.PutValue(heldKey, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("bridge: save %s: %w", heldKey, err)
	}
	return nil
}

// KeepLocal marks streams the bridge does not forward (an edge stream with
// forward: aggregates-only: its raw records stay on the gateway while the
// aggregations derived from it are forwarded). New held retention on every
// log; the bridge releases that hold on each partition of a local stream
// (now and as partitions appear), so the stream is trimmed by its own
// retention instead of growing forever. Call it before Run.
func (b *Bridge) KeepLocal(streams ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range streams {
		b.local[s] = true
	}
}

// EdgeID is the identity the bridge forwards under.
func (b *Bridge) EdgeID() string { return b.edgeID }

// Run forwards until ctx ends, starting a forwarder for every partition of
// every stream, including streams and partitions created later. It returns
// nil when ctx ends; outages are retried, never returned.
func (b *Bridge) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("bridge: already running")
	}
	b.running = true
	b.mu.Unlock()
	// The admin client closes as soon as ctx ends, not after the forwarders:
	// franz-go keeps a request queued behind a connection handshake whatever
	// its context says (against a core that accepts and never answers, the
	// bridge did not stop at all), and closing the client ends both.
	adminClosed := make(chan struct{})
	stopAdmin := context.AfterFunc(ctx, func() { b.admin.close(); close(adminClosed) })
	defer func() {
		if stopAdmin() {
			b.admin.close()
		} else {
			<-adminClosed
		}
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	b.logger.Info("bridge running", "edge_id", b.edgeID, "brokers", b.cfg.Brokers, "target", b.cfg.Target,
		"compression", b.cfg.Compression, "max_in_flight", b.cfg.MaxInFlight, "bandwidth_bytes_per_sec", b.cfg.BandwidthBytesPerSec)
	tick := time.NewTicker(b.cfg.ScanInterval)
	defer tick.Stop()
	for {
		b.startForwarders(ctx, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (b *Bridge) startForwarders(ctx context.Context, wg *sync.WaitGroup) {
	for _, t := range b.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			k := partKey{t.Name, p}
			b.mu.Lock()
			_, ok := b.fwd[k]
			local, released := b.local[t.Name], b.released[k]
			b.mu.Unlock()
			if ok || released {
				continue
			}
			if local {
				b.release(k)
				continue
			}
			l, err := b.topics.Partition(t.Name, p)
			if err != nil {
				continue // deleted meanwhile
			}
			f, err := newForwarder(b, t.Name, p, l)
			if err != nil {
				b.logger.Error("cannot forward partition", "stream", t.Name, "partition", p, "err", err)
				continue
			}
			b.mu.Lock()
			b.fwd[k] = f
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.run(ctx)
			}()
		}
	}
}

// release drops the retention hold on a local stream's partition.
func (b *Bridge) release(k partKey) {
	l, err := b.topics.Partition(k.stream, k.partition)
	if err != nil {
		return // deleted meanwhile
	}
	l.SetRetentionFloor(math.MaxInt64)
	b.mu.Lock()
	b.released[k] = true
	b.mu.Unlock()
	b.logger.Info("stream kept on the edge (forward: aggregates-only): not forwarded, retention hold released",
		"stream", k.stream, "partition", k.partition)
}

// Status and PartitionStatus are the bridge's snapshot, as the edge serves
// it at /api/v1/bridge; they live in bridge/status so that readers of that
// API (the CLI) need not link the bridge.
type (
	Status          = status.Status
	PartitionStatus = status.PartitionStatus
)

// Status reports every partition's cursor, backlog and last acknowledgement.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	fs := make([]*forwarder, 0, len(b.fwd))
	for _, f := range b.fwd {
		fs = append(fs, f)
	}
	b.mu.Unlock()
	st := Status{EdgeID: b.edgeID, Target: b.cfg.Target}
	now := time.Now()
	for _, f := range fs {
		st.Partitions = append(st.Partitions, f.status(now))
	}
	sort.Slice(st.Partitions, func(i, j int) bool {
		a, c := st.Partitions[i], st.Partitions[j]
		if a.Stream != c.Stream {
			return a.Stream < c.Stream
		}
		return a.Partition < c.Partition
	})
	return st
}
