package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/storage/meta"
)

// Errors from the topic manager.
var (
	ErrTopicExists      = errors.New("storage: topic already exists")
	ErrUnknownTopic     = errors.New("storage: unknown topic")
	ErrUnknownPartition = errors.New("storage: unknown partition")
	ErrInvalidTopic     = errors.New("storage: invalid topic name")
	ErrInvalidPartition = errors.New("storage: invalid partition count")
)

// MaxPartitions bounds a topic's partition count.
const MaxPartitions = 10000

// TopicInfo describes one topic.
type TopicInfo struct {
	Name       string
	Partitions int32
	Config     LogConfig // the topic's effective config (defaults applied)
}

type topic struct {
	info TopicInfo
	// override is the config as given at creation (zero fields = defaults),
	// which is what is persisted.
	override LogConfig
	logs     []*Log
}

// Topics owns every partition log under one data directory and their
// definitions in the metadata store.
type Topics struct {
	dir      string
	store    *meta.Store
	defaults LogConfig
	logger   *slog.Logger

	mu     sync.RWMutex
	topics map[string]*topic
	closed bool
	// hold keeps every log's retention floor at 0 from its first byte until
	// a reader (the edge's bridge) moves it; see HoldRetention.
	hold bool

	// all is every partition log, replaced (under mu) whenever topics or
	// partitions come and go, so TotalSize — which an edge with a disk
	// budget calls on every publish — takes no lock and allocates nothing.
	all atomic.Pointer[[]*Log]
}

// refreshAll rebuilds the all snapshot (mu held for writing, or t not yet shared).
func (t *Topics) refreshAll() {
	var logs []*Log
	for _, tp := range t.topics {
		logs = append(logs, tp.logs...)
	}
	t.all.Store(&logs)
}

// ValidTopicName applies Kafka's topic naming rules.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 249 {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q has %q (allowed: letters, digits, '.', '_', '-')", ErrInvalidTopic, name, c)
		}
	}
	return nil
}

func partitionDir(dir, name string, p int32) string {
	return filepath.Join(dir, name+"-"+strconv.Itoa(int(p)))
}

// OpenTopics opens every topic recorded in store, each partition under
// dir/<topic>-<partition>. Per-topic config fields left zero take defaults.
func OpenTopics(dir string, store *meta.Store, defaults LogConfig, logger *slog.Logger) (*Topics, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := defaults.Validate(); err != nil {
		return nil, fmt.Errorf("open topics: defaults: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open topics: %w", err)
	}
	t := &Topics{dir: dir, store: store, defaults: defaults, logger: logger, topics: map[string]*topic{}}
	recs, err := store.Topics()
	if err != nil {
		return nil, fmt.Errorf("open topics: %w", err)
	}
	for _, rec := range recs {
		var override LogConfig
		if len(rec.Config) > 0 {
			if err := json.Unmarshal(rec.Config, &override); err != nil {
				t.Close()
				return nil, fmt.Errorf("open topics: config of %s: %w", rec.Name, err)
			}
		}
		tp, err := t.openTopic(rec.Name, rec.Partitions, override)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.topics[rec.Name] = tp
	}
	t.refreshAll()
	return t, nil
}

// merge fills an override's zero fields from the defaults.
func (t *Topics) merge(o LogConfig) LogConfig {
	d := t.defaults
	if o.SegmentBytes != 0 {
		d.SegmentBytes = o.SegmentBytes
	}
	if o.SegmentAge != 0 {
		d.SegmentAge = o.SegmentAge
	}
	if o.IndexIntervalBytes != 0 {
		d.IndexIntervalBytes = o.IndexIntervalBytes
	}
	if o.RetentionBytes != 0 {
		d.RetentionBytes = o.RetentionBytes
	}
	if o.RetentionAge != 0 {
		d.RetentionAge = o.RetentionAge
	}
	if o.Cleanup != "" {
		d.Cleanup = o.Cleanup
	}
	if o.TombstoneRetention != 0 {
		d.TombstoneRetention = o.TombstoneRetention
	}
	if o.MaxBatchBytes != 0 {
		d.MaxBatchBytes = o.MaxBatchBytes
	}
	if o.Durability.Mode != "" {
		d.Durability.Mode = o.Durability.Mode
	}
	if o.Durability.Interval != 0 {
		d.Durability.Interval = o.Durability.Interval
	}
	if o.Durability.Bytes != 0 {
		d.Durability.Bytes = o.Durability.Bytes
	}
	if o.TimestampType != "" {
		d.TimestampType = o.TimestampType
	}
	if o.TimestampBeforeMax != 0 {
		d.TimestampBeforeMax = o.TimestampBeforeMax
	}
	if o.TimestampAfterMax != 0 {
		d.TimestampAfterMax = o.TimestampAfterMax
	}
	if o.Compression != "" {
		d.Compression = o.Compression
	}
	return d.WithDefaults()
}

func (t *Topics) openTopic(name string, partitions int32, override LogConfig) (*topic, error) {
	cfg := t.merge(override)
	tp := &topic{info: TopicInfo{Name: name, Partitions: partitions, Config: cfg}, override: override}
	for p := int32(0); p < partitions; p++ {
		l, err := OpenLog(partitionDir(t.dir, name, p), cfg, t.logger)
		if err != nil {
			for _, o := range tp.logs {
				o.Close()
			}
			return nil, fmt.Errorf("open topic %s: %w", name, err)
		}
		t.holdNew(l)
		tp.logs = append(tp.logs, l)
	}
	return tp, nil
}

func (t *Topics) persist(tp *topic) error {
	cfg, err := json.Marshal(tp.override)
	if err != nil {
		return fmt.Errorf("encode topic config: %w", err)
	}
	return t.store.PutTopic(meta.TopicRecord{Name: tp.info.Name, Partitions: tp.info.Partitions, Config: cfg, CreatedMs: time.Now().UnixMilli()})
}

// Create makes a topic with n partitions; cfg's zero fields take the defaults.
func (t *Topics) Create(name string, partitions int32, cfg LogConfig) error {
	if err := ValidTopicName(name); err != nil {
		return err
	}
	if partitions < 1 || partitions > MaxPartitions {
		return fmt.Errorf("%w: %d (want 1..%d)", ErrInvalidPartition, partitions, MaxPartitions)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrClosed
	}
	if _, ok := t.topics[name]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, name)
	}
	// A directory left by an interrupted delete must not leak old data into
	// the new topic.
	for p := int32(0); p < partitions; p++ {
		if err := os.RemoveAll(partitionDir(t.dir, name, p)); err != nil {
			return fmt.Errorf("create topic %s: %w", name, err)
		}
	}
	tp, err := t.openTopic(name, partitions, cfg)
	if err != nil {
		return err
	}
	if err := t.persist(tp); err != nil {
		for _, l := range tp.logs {
			l.Delete()
		}
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	t.topics[name] = tp
	t.refreshAll()
	t.logger.Info("created topic", "topic", name, "partitions", partitions)
	return nil
}

// Delete closes and removes a topic and its data.
func (t *Topics) Delete(name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp, ok := t.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	// Forget the topic first: a crash after this leaves orphan directories
	// (removed on re-create), never a topic without its data.
	if err := t.store.DeleteTopic(name); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	delete(t.topics, name)
	t.refreshAll()
	var errs []error
	for _, l := range tp.logs {
		errs = append(errs, l.Delete())
	}
	t.logger.Info("deleted topic", "topic", name)
	return errors.Join(errs...)
}

// AddPartitions grows a topic to total partitions.
func (t *Topics) AddPartitions(name string, total int32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp, ok := t.topics[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if total <= tp.info.Partitions || total > MaxPartitions {
		return fmt.Errorf("%w: %s has %d partitions, asked for %d", ErrInvalidPartition, name, tp.info.Partitions, total)
	}
	var added []*Log
	for p := tp.info.Partitions; p < total; p++ {
		dir := partitionDir(t.dir, name, p)
		os.RemoveAll(dir)
		l, err := OpenLog(dir, tp.info.Config, t.logger)
		if err != nil {
			for _, a := range added {
				a.Delete()
			}
			return fmt.Errorf("add partitions to %s: %w", name, err)
		}
		t.holdNew(l)
		added = append(added, l)
	}
	old := tp.info.Partitions
	tp.logs = append(tp.logs, added...)
	tp.info.Partitions = total
	if err := t.persist(tp); err != nil {
		tp.logs = tp.logs[:old]
		tp.info.Partitions = old
		for _, a := range added {
			a.Delete()
		}
		return fmt.Errorf("add partitions to %s: %w", name, err)
	}
	t.refreshAll()
	return nil
}

// HoldRetention makes retention keep every record of every log, those open
// now and those created later, until the log's reader moves its floor with
// Log.SetRetentionFloor. An edge with a bridge calls it before retention
// first runs, so no record is removed before the bridge has had the core
// acknowledge it, however fast a new stream fills its retention bytes. The
// disk budget's DropOldestSegment ignores the floor (and is counted).
func (t *Topics) HoldRetention() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hold = true
	for _, tp := range t.topics {
		for _, l := range tp.logs {
			l.SetRetentionFloor(0)
		}
	}
}

// holdNew gives a log opened after HoldRetention the same floor (mu held, or
// the log not yet visible to retention).
func (t *Topics) holdNew(l *Log) {
	if t.hold {
		l.SetRetentionFloor(0)
	}
}

// Partition returns the log of one partition.
func (t *Topics) Partition(name string, partition int32) (*Log, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tp, ok := t.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	if partition < 0 || int(partition) >= len(tp.logs) {
		return nil, fmt.Errorf("%w: %s/%d", ErrUnknownPartition, name, partition)
	}
	return tp.logs[partition], nil
}

// Get describes one topic.
func (t *Topics) Get(name string) (TopicInfo, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	tp, ok := t.topics[name]
	if !ok {
		return TopicInfo{}, false
	}
	return tp.info, true
}

// List describes all topics, sorted by name.
func (t *Topics) List() []TopicInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TopicInfo, 0, len(t.topics))
	for _, tp := range t.topics {
		out = append(out, tp.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Logs returns every partition log (for disk-budget balancing and metrics).
func (t *Topics) Logs() []*Log {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []*Log
	for _, tp := range t.topics {
		out = append(out, tp.logs...)
	}
	return out
}

// TotalSize is the byte size of all partition logs.
func (t *Topics) TotalSize() int64 {
	var n int64
	if all := t.all.Load(); all != nil {
		for _, l := range *all {
			n += l.Size()
		}
	}
	return n
}

// Maintain applies retention and compaction every interval until ctx ends.
func (t *Topics) Maintain(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t.MaintainOnce()
	}
}

// MaintainOnce runs one round of retention and compaction over all logs.
func (t *Topics) MaintainOnce() {
	for _, l := range t.Logs() {
		if n, err := l.ApplyRetention(); err != nil {
			t.logger.Warn("retention failed", "log", l.Dir(), "err", err)
		} else if n > 0 {
			t.logger.Info("retention removed records", "log", l.Dir(), "records", n)
		}
		if l.Config().Cleanup == CleanupCompact {
			if err := l.Compact(); err != nil && !errors.Is(err, ErrClosed) {
				t.logger.Warn("compaction failed", "log", l.Dir(), "err", err)
			}
		}
	}
}

// Close closes every log (flushing them).
func (t *Topics) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	var errs []error
	for _, tp := range t.topics {
		for _, l := range tp.logs {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}
