// Command tributary-edge is the edge gateway daemon: an MQTT broker for the
// sensors next to it that stores every reading in durable local partition
// logs before acknowledging it.
//
// It starts with no arguments on safe defaults (MQTT on 127.0.0.1:1883,
// /metrics and /healthz on 127.0.0.1:9645, data in ./data/edge); a YAML file
// (-config, see deploy/edge.example.yaml) and flags override them. SIGINT or
// SIGTERM stops it gracefully: appends in flight finish and are flushed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/edge/aggregate"
	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/internal/buildinfo"
	"github.com/tributary-io/tributary/internal/flagcheck"
	"github.com/tributary-io/tributary/internal/logging"
)

func main() {
	flagcheck.Exit("tributary-edge", run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tributary-edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: tributary-edge [flags]

The Tributary edge gateway: an embedded MQTT 3.1.1/5 broker whose ingest hook
validates CBOR, JSON and SenML readings and appends them to local partition
logs, acknowledging QoS 1/2 publishes only once they are fsynced. Invalid
payloads go to <stream>.dlq with a reason header. Flags override the config
file, which overrides the built-in defaults.

Flags:
`)
		fs.PrintDefaults()
	}
	def := gateway.Defaults()
	var (
		configPath = fs.String("config", "", "YAML config file (see deploy/edge.example.yaml)")
		dataDir    = fs.String("data-dir", "", "data directory (default "+def.DataDir+")")
		mqttAddr   = fs.String("mqtt-addr", "", "MQTT TCP listen address, - to disable (default "+def.MQTT.Address+")")
		httpAddr   = fs.String("http-addr", "", "HTTP /metrics and /healthz address, - to disable (default "+def.HTTP.Address+")")
		edgeID     = fs.String("edge-id", "", "edge identity (default: generated once, kept in the data dir)")
		anonymous  = fs.Bool("allow-anonymous", false, "let clients connect without credentials (lab use)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat  = fs.String("log-format", "", "text or json (default text)")
		hashPW     = fs.Bool("hash-password", false, "read a password on stdin, print its bcrypt hash for the config, and exit")
		version    = fs.Bool("version", false, "print the version, commit and Go version, and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return flagcheck.Unexpected(fs.Args())
	}
	if *version {
		fmt.Fprintln(stdout, "tributary-edge", buildinfo.Read())
		return nil
	}
	if *hashPW {
		pw, err := io.ReadAll(io.LimitReader(os.Stdin, 1024))
		if err != nil {
			return fmt.Errorf("read password: %w", err)
		}
		h, err := auth.HashPassword(strings.TrimRight(string(pw), "\r\n"))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, h)
		return nil
	}
	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["data-dir"] {
		cfg.DataDir = *dataDir
	}
	if set["mqtt-addr"] {
		cfg.MQTT.Address = *mqttAddr
	}
	if set["http-addr"] {
		cfg.HTTP.Address = *httpAddr
	}
	if set["edge-id"] {
		cfg.EdgeID = *edgeID
	}
	if set["allow-anonymous"] {
		cfg.Auth.AllowAnonymous = *anonymous
	}
	if set["log-level"] {
		cfg.LogLevel = *logLevel
	}
	if set["log-format"] {
		cfg.LogFormat = *logFormat
	}
	logger, err := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}

	if cfg.GCPercent > 0 && os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimitMB > 0 {
		debug.SetMemoryLimit(int64(cfg.MemoryLimitMB) << 20)
	}
	// Signals are caught before the listeners open: a SIGTERM that arrives
	// as soon as the port answers must still mean a graceful stop.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, restore default handling so a second
		// one kills a shutdown that hangs (a stuck disk, say).
		<-ctx.Done()
		stop()
	}()
	g, err := gateway.Open(cfg, logger)
	if err != nil {
		return err
	}
	// The edge→core bridge runs as a gateway component: it stops before the
	// logs are closed, after its last acknowledged batch.
	if cfg.Bridge.Enabled() {
		bcfg := cfg.Bridge
		if bcfg.EdgeID == "" {
			bcfg.EdgeID = g.EdgeID()
		}
		b, err := bridge.New(bcfg, g.Topics(), g.Meta(), g.Registry(), logger)
		if err != nil {
			return err
		}
		if local := cfg.Ingest.LocalStreams(); len(local) > 0 {
			b.KeepLocal(local...)
			logger.Info("streams kept on this edge (forward: aggregates-only)", "streams", local)
		}
		g.Go("bridge", b.Run)
		g.SetStatusSource("bridge", func() any { return b.Status() })
	} else {
		logger.Info("bridge off: no bridge.brokers configured; readings stay on this edge")
	}
	// Aggregations run as gateway components too: stopped (after a last
	// checkpoint) before the logs close.
	if len(cfg.Aggregations) > 0 {
		aggs, err := aggregate.New(cfg.Aggregations, cfg.AggregationCheckpointInterval, g.Topics(), g.Meta(), g.Registry(), logger)
		if err != nil {
			return err
		}
		// Sources the bridge does not hold (kept local, or no bridge at
		// all) are held at what their aggregations have covered.
		if cfg.Bridge.Enabled() {
			aggs.HoldRetention(cfg.Ingest.LocalStreams()...)
		} else {
			for _, a := range cfg.Aggregations {
				aggs.HoldRetention(a.Source)
			}
		}
		for _, r := range aggs.Runners() {
			g.Go("aggregation "+r.Agg.Name, r.Run)
		}
		g.SetStatusSource("aggregations", func() any { return aggs.Status() })
	}

	return g.Run(ctx)
}
