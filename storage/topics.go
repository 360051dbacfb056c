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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage/meta"
)

// MaxPartitions bounds a topic's partition count.
const MaxPartitions = 10000

// TopicInfo describes one topic.
type TopicInfo struct {
	Name       string
	Partitions int32
	Config     LogConfig // the topic's effective config (defaults applied)
	// Hosted are the partitions stored here, ascending: all of them unless
	// the topic is placed (CreatePlaced).
	Hosted []int32
}

type topic struct {
	info TopicInfo
	// override is the config as given at creation (zero fields = defaults),
	// which is what is persisted.
	override LogConfig
	// logs[p] is partition p's log; nil where a placed topic does not host p.
	logs []*Log
	// placed: the topic's partitions are spread over brokers and this store
	// holds only those hosted here; new partitions are not hosted until
	// HostPartition. Otherwise every partition is local.
	placed bool
}

// hosted lists the partitions with a local log.
func (tp *topic) hosted() []int32 {
	out := []int32{}
	for p, l := range tp.logs {
		if l != nil {
			out = append(out, int32(p))
		}
	}
	return out
}

// describe is the topic's TopicInfo, its Hosted list a fresh copy.
func (tp *topic) describe() TopicInfo {
	info := tp.info
	info.Hosted = tp.hosted()
	return info
}

// openLogs are the topic's local logs.
func (tp *topic) openLogs() []*Log {
	out := make([]*Log, 0, len(tp.logs))
	for _, l := range tp.logs {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
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
	// modes is the producers' SequenceMode each log is told; see
	// SetSequenceModes.
	modes func(producerID int64) SequenceMode

	// syncs times every partition log's fsyncs (FsyncSeconds).
	syncs prometheus.Histogram

	// all is every partition log, replaced (under mu) whenever topics or
	// partitions come and go, so TotalSize — which an edge with a disk
	// budget calls on every publish — takes no lock and allocates nothing.
	all atomic.Pointer[[]*Log]
}

// refreshAll rebuilds the all snapshot (mu held for writing, or t not yet shared).
func (t *Topics) refreshAll() {
	var logs []*Log
	for _, tp := range t.topics {
		logs = append(logs, tp.openLogs()...)
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
	t := &Topics{dir: dir, store: store, defaults: defaults, logger: logger, topics: map[string]*topic{}, syncs: newFsyncHistogram()}
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
		hosted := allPartitions(rec.Partitions)
		if rec.Placed {
			hosted = rec.Hosted
		}
		tp, err := t.openTopic(rec.Name, rec.Partitions, rec.Placed, hosted, override)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.topics[rec.Name] = tp
		if rec.Placed {
			t.removeOrphans(tp)
		}
	}
	t.refreshAll()
	return t, nil
}

// merge fills an override's zero fields from the defaults.
func (t *Topics) merge(o LogConfig) LogConfig {
	d := t.defaults
	override(&d.SegmentBytes, o.SegmentBytes)
	override(&d.SegmentAge, o.SegmentAge)
	override(&d.IndexIntervalBytes, o.IndexIntervalBytes)
	override(&d.RetentionBytes, o.RetentionBytes)
	override(&d.RetentionAge, o.RetentionAge)
	override(&d.Cleanup, o.Cleanup)
	override(&d.TombstoneRetention, o.TombstoneRetention)
	override(&d.MaxBatchBytes, o.MaxBatchBytes)
	override(&d.Durability.Mode, o.Durability.Mode)
	override(&d.Durability.Interval, o.Durability.Interval)
	override(&d.Durability.Bytes, o.Durability.Bytes)
	override(&d.TimestampType, o.TimestampType)
	override(&d.TimestampBeforeMax, o.TimestampBeforeMax)
	override(&d.TimestampAfterMax, o.TimestampAfterMax)
	override(&d.Compression, o.Compression)
	override(&d.ProducerExpiry, o.ProducerExpiry)
	return d.WithDefaults()
}

// override sets *field to v unless v is its type's zero value, which in
// a LogConfig means "not set".
func override[T comparable](field *T, v T) {
	var zero T
	if v != zero {
		*field = v
	}
}

// allPartitions is 0..n-1.
func allPartitions(n int32) []int32 {
	out := make([]int32, n)
	for p := range out {
		out[p] = int32(p)
	}
	return out
}

// openTopic opens the hosted partitions' logs (hosted partitions outside
// 0..partitions-1 are ignored).
func (t *Topics) openTopic(name string, partitions int32, placed bool, hosted []int32, override LogConfig) (*topic, error) {
	cfg := t.merge(override)
	tp := &topic{info: TopicInfo{Name: name, Partitions: partitions, Config: cfg}, override: override,
		logs: make([]*Log, partitions), placed: placed}
	for _, p := range hosted {
		if p < 0 || p >= partitions || tp.logs[p] != nil {
			continue
		}
		l, err := t.openLog(partitionDir(t.dir, name, p), cfg)
		if err != nil {
			for _, o := range tp.openLogs() {
				o.Close()
			}
			return nil, fmt.Errorf("open topic %s: %w", name, err)
		}
		tp.logs[p] = l
	}
	return tp, nil
}

// removeOrphans removes the directories of partitions a placed topic does
// not host: left by a DropPartition that crashed between forgetting the
// partition and removing its data.
func (t *Topics) removeOrphans(tp *topic) {
	for p, l := range tp.logs {
		if l != nil {
			continue
		}
		dir := partitionDir(t.dir, tp.info.Name, int32(p))
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			t.logger.Warn("remove data of a partition not hosted here", "dir", dir, "err", err)
			continue
		}
		t.logger.Info("removed data of a partition not hosted here", "topic", tp.info.Name, "partition", p)
	}
}

func (t *Topics) persist(tp *topic) error {
	cfg, err := json.Marshal(tp.override)
	if err != nil {
		return fmt.Errorf("encode topic config: %w", err)
	}
	rec := meta.TopicRecord{Name: tp.info.Name, Partitions: tp.info.Partitions, Config: cfg, CreatedMs: time.Now().UnixMilli()}
	if tp.placed {
		rec.Placed, rec.Hosted = true, tp.hosted()
	}
	return t.store.PutTopic(rec)
}

// Create makes a topic with n partitions, all stored here; cfg's zero
// fields take the defaults.
func (t *Topics) Create(name string, partitions int32, cfg LogConfig) error {
	return t.create(name, partitions, cfg, false, allPartitions(partitions))
}

// CreatePlaced makes a placed topic: its n partitions are spread over
// brokers and only the hosted ones are stored here (any of them, or none).
// More come and go with HostPartition and DropPartition.
func (t *Topics) CreatePlaced(name string, partitions int32, cfg LogConfig, hosted []int32) error {
	for _, p := range hosted {
		if p < 0 || p >= partitions {
			return fmt.Errorf("create topic %s: hosted partition %d of %d: %w", name, p, partitions, ErrUnknownPartition)
		}
	}
	return t.create(name, partitions, cfg, true, hosted)
}

func (t *Topics) create(name string, partitions int32, cfg LogConfig, placed bool, hosted []int32) error {
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
	tp, err := t.openTopic(name, partitions, placed, hosted, cfg)
	if err != nil {
		return err
	}
	if err := t.persist(tp); err != nil {
		for _, l := range tp.openLogs() {
			l.Delete()
		}
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	t.topics[name] = tp
	t.refreshAll()
	if placed {
		t.logger.Info("created topic", "topic", name, "partitions", partitions, "hosted", tp.hosted())
	} else {
		t.logger.Info("created topic", "topic", name, "partitions", partitions)
	}
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
	for _, l := range tp.openLogs() {
		errs = append(errs, l.Delete())
	}
	t.logger.Info("deleted topic", "topic", name)
	return errors.Join(errs...)
}

// AddPartitions grows a topic to total partitions. A placed topic hosts
// none of the new ones until HostPartition.
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
	for p := tp.info.Partitions; p < total && !tp.placed; p++ {
		dir := partitionDir(t.dir, name, p)
		os.RemoveAll(dir)
		l, err := t.openLog(dir, tp.info.Config)
		if err != nil {
			for _, a := range added {
				a.Delete()
			}
			return fmt.Errorf("add partitions to %s: %w", name, err)
		}
		added = append(added, l)
	}
	old := tp.info.Partitions
	if tp.placed {
		tp.logs = append(tp.logs, make([]*Log, total-old)...)
	} else {
		tp.logs = append(tp.logs, added...)
	}
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

// writableLocked finds a topic to change (mu held for writing): ErrClosed
// once the store is closed, ErrUnknownTopic for a name it does not hold.
func (t *Topics) writableLocked(name string) (*topic, error) {
	if t.closed {
		return nil, ErrClosed
	}
	tp, ok := t.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return tp, nil
}

// HostPartition makes partition p of a placed topic local: its log is
// created (empty) and recorded as hosted here. Hosting one already hosted
// is a no-op.
func (t *Topics) HostPartition(name string, p int32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp, err := t.writableLocked(name)
	if err != nil {
		return fmt.Errorf("host partition %s/%d: %w", name, p, err)
	}
	if p < 0 || int(p) >= len(tp.logs) {
		return fmt.Errorf("host partition %s/%d: %w", name, p, ErrUnknownPartition)
	}
	if tp.logs[p] != nil {
		return nil
	}
	// Whatever an interrupted drop left behind is not this replica's data.
	dir := partitionDir(t.dir, name, p)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("host partition %s/%d: %w", name, p, err)
	}
	l, err := t.openLog(dir, tp.info.Config)
	if err != nil {
		return fmt.Errorf("host partition %s/%d: %w", name, p, err)
	}
	tp.logs[p] = l
	if err := t.persist(tp); err != nil {
		tp.logs[p] = nil
		l.Delete()
		return fmt.Errorf("host partition %s/%d: %w", name, p, err)
	}
	t.refreshAll()
	t.logger.Info("hosting partition", "topic", name, "partition", p)
	return nil
}

// DropPartition closes partition p's log and deletes its data; the topic
// becomes placed if it was not. Dropping one not hosted is a no-op.
func (t *Topics) DropPartition(name string, p int32) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp, err := t.writableLocked(name)
	if err != nil {
		return fmt.Errorf("drop partition %s/%d: %w", name, p, err)
	}
	if p < 0 || int(p) >= len(tp.logs) || tp.logs[p] == nil {
		return nil
	}
	l, wasPlaced := tp.logs[p], tp.placed
	// Forget the partition first, as Delete does a topic: a crash after
	// this leaves a directory that the next open or HostPartition removes,
	// never a hosted partition without its data.
	tp.logs[p], tp.placed = nil, true
	if err := t.persist(tp); err != nil {
		tp.logs[p], tp.placed = l, wasPlaced
		return fmt.Errorf("drop partition %s/%d: %w", name, p, err)
	}
	t.refreshAll()
	if err := l.Delete(); err != nil {
		return fmt.Errorf("drop partition %s/%d: %w", name, p, err)
	}
	t.logger.Info("dropped partition", "topic", name, "partition", p)
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
		for _, l := range tp.openLogs() {
			l.SetRetentionFloor(0)
		}
	}
}

// SetSequenceModes tells every partition log, open or opened later, the
// SequenceMode of each producer id, for the producers a log meets without
// an append naming one (replayed after a crash, rebuilt after a
// truncation). The core passes the one it appends with.
func (t *Topics) SetSequenceModes(modes func(producerID int64) SequenceMode) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.modes = modes
	for _, tp := range t.topics {
		for _, l := range tp.openLogs() {
			l.adoptSequenceModes(modes)
		}
	}
}

// openLog opens a partition's log in dir, timing its fsyncs in t's
// FsyncSeconds. A log opened after HoldRetention gets the same floor, and
// after SetSequenceModes the same modes (mu held, or the log not yet
// visible).
func (t *Topics) openLog(dir string, cfg LogConfig) (*Log, error) {
	l, err := openLog(dir, cfg, t.logger, t.syncs)
	if err == nil && t.hold {
		l.SetRetentionFloor(0)
	}
	if err == nil && t.modes != nil {
		l.adoptSequenceModes(t.modes)
	}
	return l, err
}

// FsyncSeconds is the histogram tributary_storage_fsync_seconds of every
// data fsync of the partition logs t opens, for a daemon to register.
func (t *Topics) FsyncSeconds() prometheus.Histogram { return t.syncs }

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
	if tp.logs[partition] == nil {
		return nil, fmt.Errorf("%w: %s/%d", ErrNotHosted, name, partition)
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
	return tp.describe(), true
}

// List describes all topics, sorted by name.
func (t *Topics) List() []TopicInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]TopicInfo, 0, len(t.topics))
	for _, tp := range t.topics {
		out = append(out, tp.describe())
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
		out = append(out, tp.openLogs()...)
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
	for range tick.Every(ctx, every) {
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
		if n := l.ExpireProducers(); n > 0 {
			t.logger.Info("forgot idle producers", "log", l.Dir(), "producers", n)
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
		for _, l := range tp.openLogs() {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}
