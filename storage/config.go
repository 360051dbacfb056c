package storage

import (
	"fmt"
	"math"
	"time"
)

// SyncMode says when appended bytes are forced to disk.
type SyncMode string

const (
	// SyncAlways fsyncs before every append returns.
	SyncAlways SyncMode = "always"
	// SyncInterval fsyncs at most every Durability.Interval.
	SyncInterval SyncMode = "interval"
	// SyncBytes fsyncs once Durability.Bytes unsynced bytes have piled up.
	SyncBytes SyncMode = "bytes"
)

// Durability is a log's fsync policy. Whatever the mode, an append that asks
// for durability (AppendOptions.Durable) returns only once an fsync covering
// its bytes has completed; concurrent durable appends share one fsync.
type Durability struct {
	Mode     SyncMode      `yaml:"mode" json:"mode"`
	Interval time.Duration `yaml:"interval" json:"interval"`
	Bytes    int64         `yaml:"bytes" json:"bytes"`
}

// CleanupPolicy is Kafka's cleanup.policy.
type CleanupPolicy string

const (
	CleanupDelete  CleanupPolicy = "delete"
	CleanupCompact CleanupPolicy = "compact"
)

// LogConfig configures one partition log. Zero values take the defaults.
type LogConfig struct {
	// SegmentBytes rolls the active segment once it reaches this size.
	SegmentBytes int64 `yaml:"segment_bytes" json:"segment_bytes"`
	// SegmentAge rolls the active segment once its first batch is this old.
	SegmentAge time.Duration `yaml:"segment_age" json:"segment_age"`
	// IndexIntervalBytes is how many log bytes pass between sparse index entries.
	IndexIntervalBytes int `yaml:"index_interval_bytes" json:"index_interval_bytes"`
	// RetentionBytes bounds the log's total size (whole segments removed); <= 0 keeps all.
	RetentionBytes int64 `yaml:"retention_bytes" json:"retention_bytes"`
	// RetentionAge removes segments whose newest record is older; <= 0 keeps all.
	RetentionAge time.Duration `yaml:"retention_age" json:"retention_age"`
	// Cleanup selects delete (retention only) or compact.
	Cleanup CleanupPolicy `yaml:"cleanup_policy" json:"cleanup_policy"`
	// TombstoneRetention is how long a compacted log keeps delete markers.
	TombstoneRetention time.Duration `yaml:"tombstone_retention" json:"tombstone_retention"`
	// MaxBatchBytes rejects larger batches with ErrBatchTooLarge.
	MaxBatchBytes int `yaml:"max_batch_bytes" json:"max_batch_bytes"`
	// Durability is the fsync policy.
	Durability Durability `yaml:"durability" json:"durability"`
	// TimestampType is Kafka's message.timestamp.type: CreateTime (the
	// default: the producer's timestamps are kept) or LogAppendTime (every
	// batch is stamped with the time it is appended).
	TimestampType TimestampType `yaml:"timestamp_type" json:"timestamp_type,omitempty"`
	// TimestampBeforeMax and TimestampAfterMax refuse CreateTime batches
	// whose timestamps lie further in the past or the future than this
	// (Kafka's message.timestamp.before.max.ms / after.max.ms, KIP-937);
	// 0 means no bound.
	TimestampBeforeMax time.Duration `yaml:"timestamp_before_max" json:"timestamp_before_max,omitempty"`
	TimestampAfterMax  time.Duration `yaml:"timestamp_after_max" json:"timestamp_after_max,omitempty"`
	// Compression is Kafka's compression.type: "producer" (or empty) keeps
	// each batch as the producer compressed it; "uncompressed", "gzip",
	// "snappy", "lz4" or "zstd" recompresses appended batches whose codec
	// differs (see recompress.go).
	Compression string `yaml:"compression" json:"compression,omitempty"`
	// ProducerExpiry forgets the idempotence state of a producer that has
	// not appended for this long and has no transaction open (Kafka's
	// producer.id.expiration.ms); default 24 hours, negative keeps it for
	// ever. Producers in SequenceFromSource mode (bridges) are kept.
	ProducerExpiry time.Duration `yaml:"producer_expiry" json:"producer_expiry,omitempty"`
}

// TimestampType is CreateTime or LogAppendTime.
type TimestampType string

// Timestamp types.
const (
	CreateTime    TimestampType = "CreateTime"
	LogAppendTime TimestampType = "LogAppendTime"
)

// MaxSegmentBytes is the largest SegmentBytes (Kafka's segment.bytes bound).
const MaxSegmentBytes = math.MaxInt32

// Defaults used for zero fields.
const (
	DefaultSegmentBytes       = 128 << 20
	DefaultIndexIntervalBytes = 4096
	DefaultMaxBatchBytes      = 8 << 20
	DefaultSyncInterval       = 100 * time.Millisecond
	DefaultSyncBytes          = 4 << 20
	DefaultTombstoneRetention = 24 * time.Hour
	DefaultProducerExpiry     = 24 * time.Hour
)

// WithDefaults returns c with zero fields replaced by defaults.
func (c LogConfig) WithDefaults() LogConfig {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.IndexIntervalBytes <= 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.Cleanup == "" {
		c.Cleanup = CleanupDelete
	}
	if c.TombstoneRetention <= 0 {
		c.TombstoneRetention = DefaultTombstoneRetention
	}
	if c.Durability.Mode == "" {
		c.Durability.Mode = SyncInterval
	}
	if c.Durability.Interval <= 0 {
		c.Durability.Interval = DefaultSyncInterval
	}
	if c.Durability.Bytes <= 0 {
		c.Durability.Bytes = DefaultSyncBytes
	}
	if c.TimestampType == "" {
		c.TimestampType = CreateTime
	}
	if c.ProducerExpiry == 0 {
		c.ProducerExpiry = DefaultProducerExpiry
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c LogConfig) Validate() error {
	switch c.Durability.Mode {
	case "", SyncAlways, SyncInterval, SyncBytes:
	default:
		return fmt.Errorf("durability mode %q: want always, interval or bytes", c.Durability.Mode)
	}
	switch c.Cleanup {
	case "", CleanupDelete, CleanupCompact:
	default:
		return fmt.Errorf("cleanup policy %q: want delete or compact", c.Cleanup)
	}
	switch c.TimestampType {
	case "", CreateTime, LogAppendTime:
	default:
		return fmt.Errorf("timestamp type %q: want CreateTime or LogAppendTime", c.TimestampType)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		return err
	}
	if c.SegmentBytes > 0 && c.SegmentBytes < 1024 {
		return fmt.Errorf("segment bytes %d: must be at least 1024", c.SegmentBytes)
	}
	if c.SegmentBytes > MaxSegmentBytes {
		// Index entries hold file positions in 32 bits, and a batch may
		// run past the limit; Kafka's segment.bytes has the same bound.
		return fmt.Errorf("segment bytes %d: must be at most %d (2 GiB - 1)", c.SegmentBytes, int64(MaxSegmentBytes))
	}
	return nil
}
