package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/stream"
)

// Aggregations in the core: the config file's aggregations: section (the
// shape of tributary-stream's) runs each aggregation inside tributary-core
// as tributary-stream would, through a Kafka client to this broker's own
// listener (loopback), with its checkpoint in
// <data_dir>/stream/<name>.checkpoint.db. Exactly once as in
// tributary-stream: outputs carry tributary-stream-id and the output
// topic's tail past the checkpoint is read back at start.

// aggConfig is the part of the core's config file that is not the broker's.
type aggConfig struct {
	Aggregations []stream.Aggregation `yaml:"aggregations"`
	// CheckpointInterval: how often outputs are flushed and state + input
	// offsets saved (default 1s).
	CheckpointInterval time.Duration `yaml:"aggregation_checkpoint_interval"`
}

// fileConfig is the whole config file: the broker's settings and the
// aggregations, side by side at the top level.
type fileConfig struct {
	server.Config `yaml:",inline"`
	aggConfig     `yaml:",inline"`
}

func (a *aggConfig) validate() error {
	if len(a.Aggregations) == 0 {
		return nil
	}
	if a.CheckpointInterval == 0 {
		a.CheckpointInterval = time.Second
	}
	if a.CheckpointInterval < 10*time.Millisecond {
		return fmt.Errorf("aggregation_checkpoint_interval: %v is below 10ms", a.CheckpointInterval)
	}
	return stream.ValidateAggregations(a.Aggregations)
}

// startAggregations runs the aggregations against srv until ctx ends; the
// returned func waits for them (each stops after a last checkpoint).
func startAggregations(ctx context.Context, a aggConfig, srv *server.Server, dataDir string, reg prometheus.Registerer,
	logger *slog.Logger) (wait func(), err error) {
	if len(a.Aggregations) == 0 {
		return func() {}, nil
	}
	brokers := []string{srv.Addr()}
	var m *stream.Metrics
	if reg != nil {
		m = stream.NewMetrics(reg)
	}
	var stores []*stream.BoltStore
	closeStores := func() {
		for _, s := range stores {
			_ = s.Close()
		}
	}
	var runners []*stream.Runner
	for i := range a.Aggregations {
		agg := &a.Aggregations[i]
		store, err := stream.OpenBoltStore(filepath.Join(dataDir, "stream"), agg.Name)
		if err != nil {
			closeStores()
			return nil, err
		}
		stores = append(stores, store)
		l := logger.With("component", "aggregation", "aggregation", agg.Name)
		runners = append(runners, &stream.Runner{
			Agg:      agg,
			Source:   &stream.KafkaSource{Brokers: brokers, Topic: agg.Source, PollWait: min(a.CheckpointInterval, 250*time.Millisecond), Logger: l},
			Sink:     &stream.KafkaSink{Brokers: brokers, Logger: l},
			Store:    store,
			Interval: a.CheckpointInterval,
			Logger:   l,
			Metrics:  m,
		})
	}
	running := stream.RunAll(ctx, runners)
	logger.Info("aggregations running against this broker", "aggregations", len(runners), "checkpoints", filepath.Join(dataDir, "stream"))
	return func() { running(); closeStores() }, nil
}
