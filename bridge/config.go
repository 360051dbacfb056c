package bridge

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Targets the bridge can forward to.
const (
	// TargetTributary is a Tributary core: exactly-once through the
	// forwarded-producer high-water mark the core keeps per edge partition.
	TargetTributary = "tributary"
	// TargetKafka is any Kafka cluster: at-least-once, same records and
	// headers, no producer id (consumers deduplicate on edge-id/edge-offset).
	TargetKafka = "kafka"
)

// Config configures a Bridge. Zero fields take the defaults of WithDefaults;
// a Config with no Brokers is invalid (the edge leaves the bridge off then).
type Config struct {
	// Brokers are the core's bootstrap addresses (host:port).
	Brokers []string `yaml:"brokers"`
	// Target is "tributary" (default) or "kafka".
	Target string `yaml:"target"`
	// ExactlyOnce (target kafka only) forwards each edge partition with a
	// transactional producer that writes the records and the partition's
	// cursor (to CursorTopic in the target cluster) in one transaction, so a
	// crash at any point neither loses nor duplicates (txnforward.go).
	// Consumers must read with isolation.level=read_committed.
	ExactlyOnce bool `yaml:"exactly_once"`
	// CursorTopic is the compacted topic holding the cursors in exactly-once
	// mode; created (1 partition, cleanup.policy=compact) when missing.
	CursorTopic string `yaml:"cursor_topic"`
	// TransactionTimeout is the producers' transaction.timeout.ms in
	// exactly-once mode: how long a crashed bridge's open transaction holds
	// the target partitions' LSO before the cluster aborts it (a restarted
	// bridge aborts it at once).
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// EdgeID names this edge to the core; empty means the id the edge keeps
	// in its metadata store (generated once).
	EdgeID string `yaml:"edge_id"`
	// Compression of forwarded batches: zstd (default), lz4, snappy, gzip or none.
	Compression string `yaml:"compression"`
	// MaxBatchBytes bounds one forwarded batch before compression (a single
	// larger record still goes alone); keep it under the core's limit.
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// MaxInFlight is how many produce requests per partition may await
	// their acknowledgement at once (always sent in order on one connection).
	// Default 4, or 1 for a Kafka target (ordering without idempotence).
	MaxInFlight int `yaml:"max_in_flight"`
	// BandwidthBytesPerSec caps the bytes sent to the core, all partitions
	// together (a metered cellular link); 0 means no cap.
	BandwidthBytesPerSec int64 `yaml:"bandwidth_bytes_per_sec"`
	// BackoffMin and BackoffMax bound the exponential, jittered wait between
	// attempts after a failure.
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// RequestTimeout bounds one produce or metadata round trip; a stalled
	// connection is dropped after it and the partition rewinds to its cursor.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// TopicPrefix is put before the edge stream name to form the core topic.
	TopicPrefix string `yaml:"topic_prefix"`
	// ScanInterval is how often new edge streams and partitions are looked for.
	ScanInterval time.Duration `yaml:"scan_interval"`
	// TLS connects to the brokers with TLS (SSL, SASL_SSL listeners).
	TLS *TLSConfig `yaml:"tls"`
	// SASL authenticates to the brokers (SASL_PLAINTEXT, SASL_SSL).
	SASL *SASLConfig `yaml:"sasl"`
	// SyncPoll is a safety net: a caught-up partition is woken by the
	// edge log's fsync (only fsynced records are forwarded) and checks again
	// at least this often anyway.
	SyncPoll time.Duration `yaml:"sync_poll"`
}

// Defaults.
const (
	DefaultCompression = "zstd"
	// DefaultMaxBatchBytes stays under Kafka's default max.message.bytes
	// (1,048,588) with room for the batch header.
	DefaultMaxBatchBytes  = 1_000_000
	DefaultMaxInFlight    = 4
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 30 * time.Second
	DefaultRequestTimeout = 30 * time.Second
	DefaultScanInterval   = 2 * time.Second
	DefaultSyncPoll       = time.Second
	// DefaultCursorTopic holds the exactly-once cursors in the target.
	DefaultCursorTopic        = "tributary-bridge-cursors"
	DefaultTransactionTimeout = time.Minute
	// maxInFlightLimit keeps the pipeline within what a broker reads ahead
	// on one connection (the core reads 16 frames ahead).
	maxInFlightLimit = 16
)

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Target == "" {
		c.Target = TargetTributary
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
		if c.Target == TargetKafka {
			// Without idempotence a retry behind a failed batch would
			// reorder records; one in flight keeps a foreign Kafka in order.
			c.MaxInFlight = 1
		}
	}
	if c.BackoffMin <= 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMax < c.BackoffMin {
		c.BackoffMax = c.BackoffMin
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = DefaultScanInterval
	}
	if c.SyncPoll <= 0 {
		c.SyncPoll = DefaultSyncPoll
	}
	if c.ExactlyOnce && c.CursorTopic == "" {
		c.CursorTopic = DefaultCursorTopic
	}
	if c.ExactlyOnce && c.TransactionTimeout <= 0 {
		c.TransactionTimeout = DefaultTransactionTimeout
	}
	return c
}

// Enabled reports whether any broker is configured.
func (c Config) Enabled() bool { return len(c.Brokers) > 0 }

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("bridge: no brokers configured")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("bridge: broker %q: %w", b, err)
		}
	}
	switch c.Target {
	case "", TargetTributary, TargetKafka:
	default:
		return fmt.Errorf("bridge: target %q: want tributary or kafka", c.Target)
	}
	if c.ExactlyOnce && c.Target != TargetKafka {
		return errors.New("bridge: exactly_once is for target kafka (a tributary target is exactly-once already)")
	}
	if _, err := recordbatch.ParseCodec(c.Compression); err != nil {
		return fmt.Errorf("bridge: compression: %w", err)
	}
	if c.MaxInFlight > maxInFlightLimit {
		return fmt.Errorf("bridge: max_in_flight %d: at most %d", c.MaxInFlight, maxInFlightLimit)
	}
	if c.BandwidthBytesPerSec < 0 {
		return fmt.Errorf("bridge: bandwidth_bytes_per_sec %d is negative", c.BandwidthBytesPerSec)
	}
	return c.validateSecurity()
}
