// Command tributary-stream runs continuous windowed aggregations over
// Kafka topics — a Tributary core's or any Kafka cluster's — and writes one
// record per closed (group, window) to a derived topic, exactly once across
// crashes (see internal/stream/README.md).
//
// It needs a config file naming the aggregations (-config, see
// deploy/stream.example.yaml); brokers default to 127.0.0.1:9092,
// checkpoints go to ./data/stream, metrics and health are served on
// http://127.0.0.1:9646/metrics and /healthz. Flags override the file.
// SIGINT or SIGTERM stops it after a last checkpoint; SIGKILL loses
// nothing either: the next start resumes from the last checkpoint.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-io/tributary/internal/flagcheck"
	"github.com/tributary-io/tributary/internal/stream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	flagcheck.Exit("tributary-stream", err)
}

func loadConfig(args []string, stderr io.Writer) (stream.Config, slog.Level, error) {
	fs := flag.NewFlagSet("tributary-stream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: tributary-stream -config FILE [flags]

Runs the aggregations the config file names (YAML; every option is explained
in deploy/stream.example.yaml) against a Tributary core or any Kafka cluster.
Each aggregation keeps its checkpoint (window state + input offsets) in
<data-dir>/<name>.checkpoint.db and writes to <source>.<name> by default.

Flags override the file:
`)
		fs.PrintDefaults()
	}
	d := stream.DefaultConfig()
	configPath := fs.String("config", "", "YAML config file (required: it names the aggregations)")
	brokers := fs.String("brokers", "", "comma-separated Kafka bootstrap brokers (default "+strings.Join(d.Brokers, ",")+")")
	dataDir := fs.String("data-dir", "", "checkpoint directory (default "+d.DataDir+")")
	httpAddr := fs.String("http-addr", "", "address for /metrics and /healthz, empty string in the file disables (default "+d.HTTPAddr+")")
	interval := fs.Duration("checkpoint-interval", 0, "how often outputs are flushed and state + offsets saved (default "+d.CheckpointInterval.String()+")")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return stream.Config{}, 0, err
	}
	if fs.NArg() > 0 {
		return stream.Config{}, 0, fmt.Errorf("unexpected argument %q (flags only; see -h)", fs.Arg(0))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return stream.Config{}, 0, fmt.Errorf("-log-level: %w", err)
	}
	if *configPath == "" {
		return stream.Config{}, 0, errors.New("no aggregations: give -config FILE (every option is explained in deploy/stream.example.yaml)")
	}
	data, err := os.ReadFile(*configPath)
	if err != nil {
		return stream.Config{}, 0, fmt.Errorf("config: %w", err)
	}
	cfg, err := stream.ParseConfig(data)
	if err != nil {
		return stream.Config{}, 0, fmt.Errorf("%s: %w", *configPath, err)
	}
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *httpAddr != "" {
		cfg.HTTPAddr = *httpAddr
	}
	if *interval != 0 {
		cfg.CheckpointInterval = *interval
	}
	if err := cfg.Validate(); err != nil {
		return stream.Config{}, 0, fmt.Errorf("%s: %w", *configPath, err)
	}
	return cfg, level, nil
}

// run serves until ctx ends. ready, if set, gets the HTTP address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(httpAddr string)) error {
	cfg, level, err := loadConfig(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := stream.NewMetrics(reg)

	var runners []*stream.Runner
	var stores []*stream.BoltStore
	defer func() {
		for _, s := range stores {
			_ = s.Close()
		}
	}()
	for i := range cfg.Aggregations {
		a := &cfg.Aggregations[i]
		store, err := stream.OpenBoltStore(cfg.DataDir, a.Name)
		if err != nil {
			return err
		}
		stores = append(stores, store)
		l := logger.With("aggregation", a.Name)
		runners = append(runners, &stream.Runner{
			Agg:      a,
			Source:   &stream.KafkaSource{Brokers: cfg.Brokers, Topic: a.Source, PollWait: min(cfg.CheckpointInterval, 250*time.Millisecond), Logger: l},
			Sink:     &stream.KafkaSink{Brokers: cfg.Brokers, Logger: l},
			Store:    store,
			Interval: cfg.CheckpointInterval,
			Logger:   l,
			Metrics:  metrics,
		})
	}

	var srv *http.Server
	httpDone := make(chan struct{})
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("http listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			healthz(w, cfg, runners)
		})
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			defer close(httpDone)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("http server", "err", err)
			}
		}()
		if ready != nil {
			ready(ln.Addr().String())
		}
	} else {
		close(httpDone)
		if ready != nil {
			ready("")
		}
	}
	logger.Info("tributary-stream started", "brokers", cfg.Brokers, "aggregations", len(runners), "http", cfg.HTTPAddr)

	stream.RunAll(ctx, runners)() // until ctx ends
	if srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	<-httpDone
	logger.Info("tributary-stream stopped")
	return nil
}

// healthz answers 200 when every aggregation runs and checkpointed
// recently (within 10 intervals, at least 30 s), else 503; the body has
// each aggregation's detail.
func healthz(w http.ResponseWriter, cfg stream.Config, runners []*stream.Runner) {
	type detail struct {
		stream.Status
		CheckpointAgeSeconds float64 `json:"checkpoint_age_seconds"`
	}
	out := map[string]detail{}
	healthy := true
	limit := max(10*cfg.CheckpointInterval, 30*time.Second)
	for _, r := range runners {
		st := r.Status()
		d := detail{Status: st, CheckpointAgeSeconds: -1}
		if !st.LastCheckpoint.IsZero() {
			d.CheckpointAgeSeconds = time.Since(st.LastCheckpoint).Seconds()
		}
		if !st.Running || st.LastCheckpoint.IsZero() || time.Since(st.LastCheckpoint) > limit {
			healthy = false
		}
		out[r.Agg.Name] = d
	}
	w.Header().Set("Content-Type", "application/json")
	if !healthy {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(out)
}
