package gateway

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/edge/aggregate"
	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/internal/yamlconfig"
	"github.com/tributary-io/tributary/storage"
)

// Config is the whole tributary-edge configuration. Zero values take the
// defaults from Defaults, so an empty file (or none) is a working gateway.
type Config struct {
	// DataDir holds the partition logs and the metadata file (meta.db).
	DataDir string `yaml:"data_dir"`
	// EdgeID names this gateway to the core (bridge headers); empty means a
	// random id generated once and kept in the metadata store.
	EdgeID string `yaml:"edge_id"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text (default) or json.
	LogFormat string          `yaml:"log_format"`
	MQTT      MQTTConfig      `yaml:"mqtt"`
	HTTP      HTTPConfig      `yaml:"http"`
	Auth      auth.Config     `yaml:"auth"`
	TopicMap  topicmap.Config `yaml:"topic_map"`
	Ingest    ingest.Config   `yaml:"ingest"`
	// Log is the default partition log config of auto-created streams.
	Log storage.LogConfig `yaml:"log"`
	// MaintainInterval is how often retention (log.retention_bytes and
	// retention_age) runs over the logs.
	MaintainInterval time.Duration `yaml:"maintain_interval"`
	// Scrub paces the background check of every stored batch's CRC; damage
	// is reported in /healthz, and the bridge declares it lost.
	Scrub storage.ScrubConfig `yaml:"scrub"`
	// MemoryLimitMB is a soft limit for the Go runtime (debug.SetMemoryLimit):
	// near it the collector runs more often and shrinks goroutine stacks
	// sooner, trading CPU for resident memory. 0 leaves the runtime default
	// (GOMEMLIMIT if set).
	MemoryLimitMB int `yaml:"memory_limit_mb"`
	// GCPercent is the Go collector's target (debug.SetGCPercent, GOGC):
	// the heap may grow this many percent over the live data before a
	// collection. The edge defaults to 40 (Go's is 100): about 6 MB less
	// resident at 1,000 devices for ~15 % more CPU, the trade a Pi-class
	// gateway wants (50 → 40 alone: ~1 MB less, ~3-7 % more CPU at full
	// load). -1 leaves GOGC (or Go's default) alone.
	GCPercent int `yaml:"gc_percent"`
	// ShutdownTimeout bounds the graceful stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Bridge forwards the streams to a core; off while it names no brokers.
	Bridge bridge.Config `yaml:"bridge"`
	// Aggregations run inside the gateway, each writing the edge stream
	// <source>.<name> that the bridge forwards like any other (see
	// edge/README.md, "Aggregated streams"); the same shape as
	// tributary-stream's aggregations section.
	Aggregations []stream.Aggregation `yaml:"aggregations"`
	// AggregationCheckpointInterval is how often aggregation outputs are
	// fsynced and their state and input offsets saved in meta.db (default 1s).
	AggregationCheckpointInterval time.Duration `yaml:"aggregation_checkpoint_interval"`
}

// MQTTConfig holds the listeners and the per-client memory knobs.
type MQTTConfig struct {
	// Address of the plain TCP listener; "-" disables it.
	Address string `yaml:"address"`
	// TLS listener, off unless Address, CertFile and KeyFile are set.
	TLS TLSConfig `yaml:"tls"`
	// WebSocketAddress enables an MQTT-over-WebSocket listener.
	WebSocketAddress string `yaml:"websocket_address"`

	// Per-client buffers and queues. mochi's defaults (8 KiB queues of
	// pending writes, 1024 receive maximum) cost ~200 KB per idle client;
	// a Pi-class gateway serving 1,000 sensors wants these small.
	ClientWriteBufferBytes int    `yaml:"client_write_buffer_bytes"`
	ClientReadBufferBytes  int    `yaml:"client_read_buffer_bytes"`
	MaxWritesPending       int32  `yaml:"max_writes_pending"`
	ReceiveMaximum         uint16 `yaml:"receive_maximum"`
	MaxInflight            uint16 `yaml:"max_inflight"`
	MaxClients             int64  `yaml:"max_clients"`
	// MaxSessionExpiry bounds how long a disconnected session is kept (s).
	MaxSessionExpiry uint32 `yaml:"max_session_expiry_seconds"`
}

// TLSConfig is the optional TLS listener.
type TLSConfig struct {
	Address  string `yaml:"address"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, if set, requires client certificates signed by it.
	ClientCAFile string `yaml:"client_ca_file"`
}

// HTTPConfig is the metrics and health endpoint.
type HTTPConfig struct {
	// Address serves /metrics and /healthz; "-" disables it.
	Address string `yaml:"address"`
	// Pprof also serves net/http/pprof under /debug/pprof/ (profiling a
	// live gateway; leave off where the address is reachable by others).
	Pprof bool `yaml:"pprof"`
	// Console serves the read-only web console at /console/ on this
	// listener (health.go, console.go).
	Console bool `yaml:"console"`
	// Health sets when /healthz calls the edge degraded.
	Health HealthConfig `yaml:"health"`
}

// Defaults returns the configuration used for anything left unset.
func Defaults() Config {
	return Config{
		DataDir:  "./data/edge",
		LogLevel: "info",
		MQTT: MQTTConfig{
			Address:                "127.0.0.1:1883",
			ClientWriteBufferBytes: 2048,
			ClientReadBufferBytes:  2048,
			MaxWritesPending:       64,
			ReceiveMaximum:         32,
			MaxInflight:            64,
			MaxClients:             5000,
			MaxSessionExpiry:       3600,
		},
		HTTP: HTTPConfig{Address: "127.0.0.1:9645"},
		Log: storage.LogConfig{
			// Small segments so retention and drop-oldest free space in
			// steps that matter on an SD card.
			SegmentBytes: 16 << 20,
			Durability:   storage.Durability{Mode: storage.SyncInterval, Interval: 200 * time.Millisecond},
		},
		Ingest:           ingest.Config{}.WithDefaults(),
		TopicMap:         topicmap.Config{StreamLevels: 1},
		ShutdownTimeout:  10 * time.Second,
		GCPercent:        40,
		MaintainInterval: time.Minute,
	}
}

// LoadConfig reads a YAML file over the defaults; path "" gives the defaults.
// Unknown keys are errors, so a typo does not silently fall back to a
// default; errors name the key, its line and the form it wants.
func LoadConfig(path string) (Config, error) {
	cfg := Defaults()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := yamlconfig.Decode(path, b, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir is empty")
	}
	if err := c.Log.Validate(); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	if err := c.Ingest.Validate(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	t := c.MQTT.TLS
	if t.Address != "" && (t.CertFile == "" || t.KeyFile == "") {
		return errors.New("mqtt.tls: address set without cert_file and key_file")
	}
	if c.MaintainInterval <= 0 {
		return errors.New("maintain_interval must be positive")
	}
	if c.MQTT.ReceiveMaximum == 0 {
		return errors.New("mqtt.receive_maximum must be at least 1")
	}
	if c.Bridge.Enabled() {
		if err := c.Bridge.WithDefaults().Validate(); err != nil {
			return err
		}
	}
	return aggregate.Validate(c.Aggregations, c.AggregationCheckpointInterval)
}
