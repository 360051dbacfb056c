// Command tributary-core runs one core broker: a Kafka-protocol server over
// Tributary's log engine.
//
// With no arguments it keeps data in ./data/core, serves Kafka clients on
// 127.0.0.1:9092 and metrics on http://127.0.0.1:9644/metrics (health at
// /healthz). A YAML file (-config, see deploy/core.example.yaml) overrides
// the defaults and flags override the file. SIGINT or SIGTERM stops it
// gracefully: connections close and every log is flushed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/buildinfo"
	"github.com/tributary-io/tributary/internal/flagcheck"
	"github.com/tributary-io/tributary/internal/logging"
	"github.com/tributary-io/tributary/internal/yamlconfig"
	"github.com/tributary-io/tributary/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	flagcheck.Exit("tributary-core", err)
}

// run serves until ctx ends (SIGINT/SIGTERM in main), then shuts down
// gracefully. ready, if set, sees the started server (tests use it).
func run(ctx context.Context, args []string, stderr io.Writer, ready func(*server.Server)) error {
	cfg, logs, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	if logs.version {
		fmt.Fprintln(stdout(stderr), "tributary-core", buildinfo.Read())
		return nil
	}
	logger, err := logging.New(stderr, logs.level, logs.format)
	if err != nil {
		return err
	}
	srv, err := server.Start(cfg, logger, nil)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	aggCtx, stopAggs := context.WithCancel(ctx)
	waitAggs, err := startAggregations(aggCtx, logs.aggs, srv, cfg.DataDir, srv.Registry(), logger)
	if err != nil {
		stopAggs()
		_ = srv.Close()
		return err
	}
	if ready != nil {
		ready(srv)
	}
	<-ctx.Done()
	logger.Info("shutting down")
	stopAggs()
	waitAggs() // their last checkpoint needs the broker
	if err := srv.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// logSettings are the flags that shape the process rather than the broker.
type logSettings struct {
	level, format string
	version       bool
	aggs          aggConfig // aggregations run in the process (aggregate.go)
}

// stdout is where -version prints: standard output, unless a test passed
// its own writer for stderr (then that one).
func stdout(stderr io.Writer) io.Writer {
	if stderr == os.Stderr {
		return os.Stdout
	}
	return stderr
}

// loadConfig applies, in order: defaults, the -config file, then flags that
// were given explicitly.
func loadConfig(args []string, stderr io.Writer) (server.Config, logSettings, error) {
	fs := flag.NewFlagSet("tributary-core", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := server.DefaultConfig()
	var (
		configPath   = fs.String("config", "", "YAML config file (see deploy/core.example.yaml); flags override it")
		dataDir      = fs.String("data-dir", d.DataDir, "directory for partition logs and the metadata file")
		kafkaAddr    = fs.String("kafka-addr", d.KafkaAddr, "Kafka protocol listen address")
		advertised   = fs.String("advertised-addr", "", "host:port given to clients in metadata (default: the listen address)")
		httpAddr     = fs.String("http-addr", d.HTTPAddr, "HTTP address for /metrics and /healthz (empty or - disables)")
		consoleAddr  = fs.String("console-addr", "", "address for the read-only web console and its JSON API (empty, the default, or - disables)")
		consoleEdges = fs.String("console-edges", "", "comma-separated edge HTTP addresses (http://host:9645) the console shows")
		nodeID       = fs.Int("node-id", int(d.NodeID), "broker id reported to clients")
		autoCreate   = fs.Bool("auto-create-topics", true, "create unknown topics on metadata and produce requests")
		partitions   = fs.Int("default-partitions", int(d.DefaultPartitions), "partitions of auto-created topics")
		maxFrame     = fs.Int("max-frame-bytes", int(d.MaxFrameBytes), "largest request frame accepted; larger ones close the connection")
		syncMode     = fs.String("sync", "", "fsync policy: always, interval or bytes (default interval; acks=all always waits for its fsync)")
		logLevel     = fs.String("log-level", "info", "debug, info, warn or error")
		logFormat    = fs.String("log-format", "text", "text or json")
		version      = fs.Bool("version", false, "print the version, commit and Go version, and exit")

		// Cluster mode: any of these turns it on (node-id is the broker id).
		serfAddr  = fs.String("serf-addr", "", "cluster: gossip (Serf) address host:port; enables cluster mode")
		raftAddr  = fs.String("raft-addr", "", "cluster: Raft transport address host:port (keep it fixed across restarts)")
		rpcAddr   = fs.String("rpc-addr", "", "cluster: address for proposals forwarded to the controller (default 127.0.0.1:0)")
		join      = fs.String("join", "", "cluster: comma-separated Serf addresses of other brokers")
		bootstrap = fs.Int("bootstrap-expect", 0, "cluster: brokers that form a new cluster (same on every broker)")
		minISR    = fs.Int("min-insync-replicas", 0, "cluster: default min.insync.replicas of topics (default 1)")
	)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: tributary-core [flags]\n\n"+
			"Runs one Tributary core broker speaking the Kafka protocol.\n"+
			"Defaults: data in %s, Kafka on %s, metrics on http://%s/metrics\n"+
			"(health at /healthz). Settings come from the defaults, then the -config\n"+
			"YAML file, then the flags given. SIGINT or SIGTERM shuts down gracefully,\n"+
			"flushing every partition log.\n\nFlags:\n",
			d.DataDir, d.KafkaAddr, d.HTTPAddr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return server.Config{}, logSettings{}, err
	}
	if fs.NArg() > 0 {
		return server.Config{}, logSettings{}, flagcheck.Unexpected(fs.Args())
	}
	logs := logSettings{level: *logLevel, format: *logFormat, version: *version}
	if *version {
		return d, logs, nil
	}
	cfg := d
	if *configPath != "" {
		b, err := os.ReadFile(*configPath)
		if err != nil {
			return cfg, logs, fmt.Errorf("read config: %w", err)
		}
		// A misspelt key is an error, not a silent default.
		fc := fileConfig{Config: cfg}
		if err := yamlconfig.Decode(*configPath, b, &fc); err != nil {
			return cfg, logs, err
		}
		cfg, logs.aggs = fc.Config, fc.aggConfig
		if err := logs.aggs.validate(); err != nil {
			return cfg, logs, fmt.Errorf("config %s: %w", *configPath, err)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "data-dir":
			cfg.DataDir = *dataDir
		case "kafka-addr":
			cfg.KafkaAddr = *kafkaAddr
		case "advertised-addr":
			cfg.AdvertisedAddr = *advertised
		case "http-addr":
			cfg.HTTPAddr = *httpAddr
		case "console-addr":
			cfg.ConsoleAddr = *consoleAddr
		case "console-edges":
			cfg.ConsoleEdges = splitList(*consoleEdges)
		case "node-id":
			cfg.NodeID = int32(*nodeID)
		case "auto-create-topics":
			cfg.AutoCreateTopics = autoCreate
		case "default-partitions":
			cfg.DefaultPartitions = int32(*partitions)
		case "max-frame-bytes":
			cfg.MaxFrameBytes = int32(*maxFrame)
		case "sync":
			cfg.Log.Durability.Mode = storage.SyncMode(*syncMode)
		case "min-insync-replicas":
			cfg.Replication.MinInsyncReplicas = *minISR
		}
	})
	clusterFlag := func(set func(c *cluster.Config)) {
		if cfg.Cluster == nil {
			cfg.Cluster = &cluster.Config{}
		}
		set(cfg.Cluster)
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "serf-addr":
			clusterFlag(func(c *cluster.Config) { c.SerfAddr = *serfAddr })
		case "raft-addr":
			clusterFlag(func(c *cluster.Config) { c.RaftAddr = *raftAddr })
		case "rpc-addr":
			clusterFlag(func(c *cluster.Config) { c.RPCAddr = *rpcAddr })
		case "join":
			clusterFlag(func(c *cluster.Config) { c.Join = splitList(*join) })
		case "bootstrap-expect":
			clusterFlag(func(c *cluster.Config) { c.BootstrapExpect = *bootstrap })
		}
	})
	if _, err := logging.New(io.Discard, logs.level, logs.format); err != nil {
		return cfg, logs, err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, logs, err
	}
	return cfg, logs, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
