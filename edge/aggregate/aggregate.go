// Package aggregate runs continuous aggregations (internal/stream) inside
// the edge gateway: each reads an edge stream's partition logs (fsynced
// records only), appends one record per closed (group, window) to the edge
// stream <source>.<name>, which the bridge forwards like any other, and
// keeps its checkpoint in the edge's metadata store.
//
// Exactly once across crashes, as the stream runner does it for Kafka: the
// checkpoint holds the window state, the input offsets it covers and the
// output log's end offset at that moment; outputs are fsynced before a
// checkpoint is saved, and after a restart the output stream's tail past
// the saved end is scanned for tributary-stream-id headers, so outputs
// written by a run that crashed before its checkpoint are recognised when
// the engine re-derives them, instead of being appended twice.
package aggregate

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// DefaultCheckpointInterval is how often outputs are fsynced and state +
// offsets saved when the config does not say.
const DefaultCheckpointInterval = time.Second

// Validate checks the edge config's aggregations section (same shape as
// tributary-stream's), filling defaults; errors name the field.
func Validate(aggs []stream.Aggregation, interval time.Duration) error {
	if interval != 0 && interval < 10*time.Millisecond {
		return fmt.Errorf("aggregation_checkpoint_interval: %v is below 10ms", interval)
	}
	return stream.ValidateAggregations(aggs)
}

// Set is the edge's aggregations, one Runner each.
type Set struct {
	runners []*stream.Runner
	topics  *storage.Topics

	mu     sync.Mutex
	held   map[string]bool                       // sources whose retention the set holds
	aggs   map[string][]string                   // source → names of the aggregations over it
	floors map[string]map[int32]map[string]int64 // source → partition → aggregation → next offset
}

// New builds a runner per aggregation over the edge's logs and metadata
// store; reg (may be nil) gets the tributary_stream_* metrics.
func New(aggs []stream.Aggregation, interval time.Duration, topics *storage.Topics, store *meta.Store,
	reg prometheus.Registerer, logger *slog.Logger) (*Set, error) {
	if len(aggs) == 0 {
		return &Set{}, nil
	}
	if err := Validate(aggs, interval); err != nil {
		return nil, err
	}
	if topics == nil || store == nil {
		return nil, errors.New("aggregate: topics and metadata store are required")
	}
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	var m *stream.Metrics
	if reg != nil {
		m = stream.NewMetrics(reg)
	}
	s := &Set{topics: topics, held: map[string]bool{}, aggs: map[string][]string{},
		floors: map[string]map[int32]map[string]int64{}}
	for i := range aggs {
		a := &aggs[i]
		l := logger.With("component", "aggregation", "aggregation", a.Name)
		s.runners = append(s.runners, &stream.Runner{
			Agg:      a,
			Source:   &LogSource{Topics: topics, Stream: a.Source, PollWait: min(interval, 250*time.Millisecond), Logger: l},
			Sink:     &LogSink{Topics: topics, Source: a.Source},
			Store:    &MetaStore{Store: store, Name: a.Name},
			Interval: interval,
			Logger:   l,
			Metrics:  m,
		})
		name, source := a.Name, a.Source
		s.aggs[source] = append(s.aggs[source], name)
		s.runners[len(s.runners)-1].OnCheckpoint = func(next map[int32]int64) { s.checkpointed(name, source, next) }
	}
	return s, nil
}

// HoldRetention makes the set hold the retention of these source streams
// at what its aggregations have checkpointed: a record no aggregation
// over the stream has covered yet is not trimmed. It is for sources the
// bridge does not hold — streams kept local (forward: aggregates-only), or
// every source when there is no bridge; where the bridge forwards a
// stream, its cursor is the floor. Call it before the runners start.
func (s *Set) HoldRetention(streams ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range streams {
		s.held[st] = true
	}
}

// checkpointed moves the retention floor of a held source's partitions to
// the lowest next offset its aggregations checkpointed (0 while one has
// not reported).
func (s *Set) checkpointed(name, source string, next map[int32]int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.held[source] {
		return
	}
	if s.floors[source] == nil {
		s.floors[source] = map[int32]map[string]int64{}
	}
	for p, off := range next {
		byAgg := s.floors[source][p]
		if byAgg == nil {
			byAgg = map[string]int64{}
			s.floors[source][p] = byAgg
		}
		byAgg[name] = off
		floor := off
		for _, n := range s.aggs[source] {
			// One that has not reported yet may resume from anywhere.
			floor = min(floor, byAgg[n])
		}
		if l, err := s.topics.Partition(source, p); err == nil {
			l.SetRetentionFloor(floor)
		}
	}
}

// Runners are the aggregations' runners; the gateway runs each (Run)
// as a component.
func (s *Set) Runners() []*stream.Runner { return s.runners }

// Health is one aggregation in the edge's /healthz and /api/v1/aggregations.
type Health struct {
	Name string `json:"name"`
	stream.Status
	Source               string  `json:"source"`
	Output               string  `json:"output"`
	CheckpointAgeSeconds float64 `json:"checkpoint_age_seconds"` // -1: none yet
}

// Status reports every aggregation, in config order.
func (s *Set) Status() []Health {
	out := make([]Health, 0, len(s.runners))
	for _, r := range s.runners {
		st := r.Status()
		h := Health{Name: r.Agg.Name, Status: st, Source: r.Agg.Source, Output: r.Agg.Output, CheckpointAgeSeconds: -1}
		if !st.LastCheckpoint.IsZero() {
			h.CheckpointAgeSeconds = time.Since(st.LastCheckpoint).Seconds()
		}
		out = append(out, h)
	}
	return out
}

// CheckpointKey is where an aggregation's checkpoint lives in the edge's
// metadata store.
func CheckpointKey(name string) string { return "stream/" + name }

// MetaStore keeps one aggregation's checkpoint (state, input offsets,
// output ends, pending IDs) as a value in the edge's meta.db; bbolt fsyncs
// every update before it returns.
type MetaStore struct {
	Store *meta.Store
	Name  string
}

// Load returns the saved checkpoint, if any.
func (m *MetaStore) Load() (stream.Checkpoint, bool, error) {
	b, err := m.Store.Value(CheckpointKey(m.Name))
	if errors.Is(err, meta.ErrNotFound) {
		return stream.Checkpoint{}, false, nil
	}
	if err != nil {
		return stream.Checkpoint{}, false, err
	}
	cp, err := stream.DecodeCheckpoint(b)
	if err != nil {
		return stream.Checkpoint{}, false, err
	}
	return cp, true, nil
}

// Save replaces the checkpoint durably.
func (m *MetaStore) Save(cp stream.Checkpoint) error {
	b, err := stream.EncodeCheckpoint(cp)
	if err != nil {
		return err
	}
	return m.Store.PutValue(CheckpointKey(m.Name), b)
}

// Close does nothing: the gateway owns the metadata store.
func (m *MetaStore) Close() error { return nil }
