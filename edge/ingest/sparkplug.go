package ingest

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// SparkplugConfig bounds the Sparkplug B state.
type SparkplugConfig struct {
	// MaxNodes is how many edge nodes' births are kept (default 10,000).
	MaxNodes int `yaml:"max_nodes"`
}

type sparkplugState struct{}

func newSparkplugState(SparkplugConfig) *sparkplugState { return &sparkplugState{} }

func (h *Hook) restoreSparkplug() {}

func (h *Hook) sparkplugDecode(r *rules.Rule, c *rules.Captures, pk packets.Packet, rec *recordbatch.Record) (decoded, error) {
	return decoded{ct: payload.ContentSparkplug}, nil
}

var _ *mqtt.Client
