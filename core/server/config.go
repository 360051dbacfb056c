package server

import (
	"cmp"
	"fmt"
	"net"
	"time"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
)

// Config is everything a single core node needs. Zero fields take the
// defaults of DefaultConfig when passed through WithDefaults.
type Config struct {
	// DataDir holds the partition logs (DataDir/logs) and the metadata file
	// (DataDir/meta.db).
	DataDir string `yaml:"data_dir"`
	// KafkaAddr is the Kafka-protocol listener address.
	KafkaAddr string `yaml:"kafka_addr"`
	// AdvertisedAddr is the host:port handed to clients in Metadata and
	// FindCoordinator; empty means the listener's actual address.
	AdvertisedAddr string `yaml:"advertised_addr"`
	// HTTPAddr serves /metrics, /healthz and /readyz; empty or "-" disables it.
	HTTPAddr string `yaml:"http_addr"`
	// ConsoleAddr serves the read-only web console and its JSON API
	// (console.go); empty (the default) or "-" disables it.
	ConsoleAddr string `yaml:"console_addr"`
	// ConsoleEdges are edge HTTP addresses (http://host:9645) whose
	// status and bridge the console shows.
	ConsoleEdges []string `yaml:"console_edges"`
	// NodeID is this broker's id in Metadata.
	NodeID int32 `yaml:"node_id"`
	// ClusterID is reported in Metadata.
	ClusterID string `yaml:"cluster_id"`
	// MaxFrameBytes bounds one request frame; larger frames close the connection.
	MaxFrameBytes int32 `yaml:"max_frame_bytes"`
	// AutoCreateTopics creates unknown topics on Metadata and Produce.
	AutoCreateTopics *bool `yaml:"auto_create_topics"`
	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that ask for -1.
	DefaultPartitions int32 `yaml:"default_partitions"`
	// MaxPartitions bounds the partition count of one topic (each partition
	// is a directory with open files).
	MaxPartitions int32 `yaml:"max_partitions"`
	// MaintainInterval is how often retention and compaction run.
	MaintainInterval time.Duration `yaml:"maintain_interval"`
	// Scrub paces the background check of every stored batch's CRC; damage
	// is reported in /healthz and, on a follower, fetched again.
	Scrub storage.ScrubConfig `yaml:"scrub"`
	// Groups bounds the consumer-group coordinator's timeouts.
	Groups GroupsConfig `yaml:"groups"`
	// Transactions tunes the transaction coordinator.
	Transactions TransactionsConfig `yaml:"transactions"`
	// Log holds the broker-wide defaults for every partition log; topics
	// override them through CreateTopics configs.
	Log storage.LogConfig `yaml:"log"`
	// Cluster makes this broker a member of a cluster (membership, Raft
	// metadata, replication); nil makes it a cluster of one, with no extra
	// ports. Its BrokerID
	// and KafkaAddr are taken from NodeID and the advertised address, and an
	// empty DataDir means DataDir/cluster.
	Cluster *cluster.Config `yaml:"cluster"`
	// Replication tunes acks=all, follower fetching and the ISR.
	Replication ReplicationConfig `yaml:"replication"`
	// Listeners replaces KafkaAddr/AdvertisedAddr with named listeners,
	// each PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; the first is the one
	// Addr reports and other brokers are told about. Empty keeps the single
	// PLAINTEXT listener on KafkaAddr, with no authentication and no ACLs.
	Listeners []ListenerConfig `yaml:"listeners"`
	// Security holds TLS files, SASL users and ACLs for the listeners.
	Security SecurityConfig `yaml:"security"`
}

// ReplicationConfig tunes replication; zero fields take Kafka's defaults
// (scaled down where Kafka's are for big clusters).
type ReplicationConfig struct {
	// LagTimeMax is how long a follower may go without catching up to the
	// leader's log end before it leaves the ISR (replica.lag.time.max.ms).
	LagTimeMax time.Duration `yaml:"lag_time_max"`
	// MinInsyncReplicas is the default min.insync.replicas of topics: an
	// acks=all produce is refused with NOT_ENOUGH_REPLICAS below it.
	MinInsyncReplicas int `yaml:"min_insync_replicas"`
	// FetchMaxWait is how long a follower's fetch waits at the leader for
	// new data (replica.fetch.wait.max.ms).
	FetchMaxWait time.Duration `yaml:"fetch_max_wait"`
	// AckTimeout bounds how long an acks=all produce waits for the ISR.
	AckTimeout time.Duration `yaml:"ack_timeout"`
	// ShutdownHandover is how long a graceful shutdown waits for the
	// controller to move this broker's partition leadership away while it
	// still serves (Kafka's controlled shutdown); negative closes at once,
	// as a crash would look to the others.
	ShutdownHandover time.Duration `yaml:"shutdown_handover"`
}

func (r ReplicationConfig) withDefaults() ReplicationConfig {
	r.LagTimeMax = positiveOr(r.LagTimeMax, 10*time.Second)
	r.MinInsyncReplicas = positiveOr(r.MinInsyncReplicas, 1)
	r.FetchMaxWait = positiveOr(r.FetchMaxWait, 500*time.Millisecond)
	r.AckTimeout = positiveOr(r.AckTimeout, 30*time.Second)
	if r.ShutdownHandover == 0 { // negative means no handover
		r.ShutdownHandover = 5 * time.Second
	}
	return r
}

// Defaults.
const (
	DefaultDataDir           = "./data/core"
	DefaultKafkaAddr         = "127.0.0.1:9092"
	DefaultHTTPAddr          = "127.0.0.1:9644"
	DefaultMaxFrameBytes     = 100 << 20
	DefaultPartitionCount    = 1
	DefaultMaintainInterval  = 30 * time.Second
	DefaultMaxPartitions     = 10000
	DefaultClusterID         = "tributary"
	defaultMaxFetchWait      = 30 * time.Second
	defaultMaxPipelinedReads = 4
)

// DefaultConfig is the configuration `tributary-core` runs with when given
// no flags and no file.
func DefaultConfig() Config {
	on := true
	return Config{
		DataDir:           DefaultDataDir,
		KafkaAddr:         DefaultKafkaAddr,
		HTTPAddr:          DefaultHTTPAddr,
		ClusterID:         DefaultClusterID,
		MaxFrameBytes:     DefaultMaxFrameBytes,
		AutoCreateTopics:  &on,
		DefaultPartitions: DefaultPartitionCount,
		MaintainInterval:  DefaultMaintainInterval,
		MaxPartitions:     DefaultMaxPartitions,
	}
}

// WithDefaults fills zero fields (HTTPAddr and AdvertisedAddr stay as given:
// empty is meaningful for them).
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	c.DataDir = cmp.Or(c.DataDir, d.DataDir)
	c.KafkaAddr = cmp.Or(c.KafkaAddr, d.KafkaAddr)
	c.ClusterID = cmp.Or(c.ClusterID, d.ClusterID)
	c.MaxFrameBytes = positiveOr(c.MaxFrameBytes, d.MaxFrameBytes)
	if c.AutoCreateTopics == nil {
		c.AutoCreateTopics = d.AutoCreateTopics
	}
	c.DefaultPartitions = positiveOr(c.DefaultPartitions, d.DefaultPartitions)
	c.MaxPartitions = positiveOr(c.MaxPartitions, d.MaxPartitions)
	c.MaintainInterval = positiveOr(c.MaintainInterval, d.MaintainInterval)
	c.Replication = c.Replication.withDefaults()
	return c
}

// positiveOr is v, or def when v is unset (zero or negative).
func positiveOr[T int | int32 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil {
		return fmt.Errorf("kafka_addr %q: %w", c.KafkaAddr, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("advertised_addr %q: %w", c.AdvertisedAddr, err)
		}
	}
	if c.MaxFrameBytes < 1024 {
		return fmt.Errorf("max_frame_bytes %d: must be at least 1024", c.MaxFrameBytes)
	}
	if c.DefaultPartitions > c.MaxPartitions {
		return fmt.Errorf("default_partitions %d above max_partitions %d", c.DefaultPartitions, c.MaxPartitions)
	}
	if err := c.validateListeners(); err != nil {
		return err
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	if c.Cluster != nil && (c.NodeID < 0 || c.NodeID > 0xffff) {
		// Producer ids carry the broker id in 16 bits (22_init_producer_id.go).
		return fmt.Errorf("node_id %d: a cluster broker id must be 0-65535", c.NodeID)
	}
	return nil
}

func (c Config) autoCreate() bool { return c.AutoCreateTopics != nil && *c.AutoCreateTopics }

// TransactionsConfig tunes the transaction coordinator (KIP-98).
type TransactionsConfig struct {
	// MaxTimeout bounds the transaction timeout a producer may ask for
	// (transaction.max.timeout.ms); default 15 minutes.
	MaxTimeout time.Duration `yaml:"max_timeout"`
	// IDExpiration forgets a transactional id with nothing open after it
	// has been idle this long (transactional.id.expiration.ms); default 7
	// days.
	IDExpiration time.Duration `yaml:"id_expiration"`
}

// GroupsConfig is the consumer-group part of the configuration; zero fields
// take the coordinator's defaults (Kafka's broker defaults).
type GroupsConfig struct {
	// MinSessionTimeout and MaxSessionTimeout bound what a member may ask for.
	MinSessionTimeout time.Duration `yaml:"min_session_timeout"`
	MaxSessionTimeout time.Duration `yaml:"max_session_timeout"`
	// MaxRebalanceTimeout caps a member's rebalance timeout.
	MaxRebalanceTimeout time.Duration `yaml:"max_rebalance_timeout"`
	// InitialRebalanceDelay holds the first rebalance of an empty group so
	// consumers starting together join one generation; negative disables it.
	InitialRebalanceDelay time.Duration `yaml:"initial_rebalance_delay"`
	// MaxGroupSize limits members per group; 0 is unlimited.
	MaxGroupSize int `yaml:"max_group_size"`
}
