package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-io/tributary/firmware-sim/device"
	"github.com/tributary-io/tributary/firmware-sim/fleet"
	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/firmware-sim/summary"
	"github.com/tributary-io/tributary/internal/logging"
	"github.com/tributary-io/tributary/internal/pemfile"
)

const runUsage = `Usage: tributary-sim run [flags]

Simulates --devices sensors, each with its own MQTT connection, publishing
readings to topic <stream>/<device>/<kind> at --rate per second (with
--jitter). Each reading carries the device id, a per-device sequence number
and the device time. The run ends after --duration or once every device has
published --count readings, whichever comes first; pending publishes then get
--drain-timeout to complete. Ctrl-C ends generation early and drains the same way.

Devices keep a bounded offline queue (--queue, oldest dropped first and
counted) while disconnected and reconnect with exponential backoff. With
QoS 1 a reading counts as acknowledged on PUBACK; one not acknowledged
within --ack-timeout makes the device reconnect and resend it.

--summary writes what every device generated, sent, had acknowledged and
knows it did not deliver; "tributary-sim verify --summary" checks a stream
against it. --state keeps each device's next sequence number across runs.

Flags:
`

type runFlags struct {
	broker, stream, kind, encoding, idPrefix      string
	devices, idStart, queue, inflight, qos        int
	rate, jitter                                  float64
	duration, drain, ramp, ackTimeout             time.Duration
	minBackoff, maxBackoff                        time.Duration
	count                                         uint64
	password                                      string
	useTLS, insecure                              bool
	caFile, certFile, keyFile                     string
	malformed, oversized, wrongTopic              float64
	oversizeBytes                                 int
	wrongTopicName                                string
	seed                                          int64
	stateFile, summaryFile, logLevel, metricsAddr string
	quiet                                         bool
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f runFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), runUsage); fs.PrintDefaults() }
	fs.StringVar(&f.broker, "broker", "127.0.0.1:1883", "MQTT broker: host:port, tcp://host:port or ssl://host:port")
	fs.IntVar(&f.devices, "devices", 10, "number of devices")
	fs.StringVar(&f.idPrefix, "id-prefix", "dev-", "device id prefix; ids are <prefix><6-digit index>")
	fs.IntVar(&f.idStart, "id-start", 0, "index of the first device (to run several fleets side by side)")
	fs.StringVar(&f.stream, "stream", "sensors", "first topic level: the stream")
	fs.StringVar(&f.kind, "kind", "reading", "last topic level")
	fs.StringVar(&f.encoding, "encoding", "cbor", "payload encoding: cbor, json, senml-cbor (senml) or senml-json")
	fs.IntVar(&f.qos, "qos", 1, "MQTT QoS for readings: 0 or 1")
	fs.Float64Var(&f.rate, "rate", 1, "readings per second per device")
	fs.Float64Var(&f.jitter, "jitter", 0.2, "each interval varies by up to this fraction (0..1)")
	fs.DurationVar(&f.duration, "duration", 0, "stop generating after this long")
	fs.Uint64Var(&f.count, "count", 0, "stop each device after this many readings")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "how long pending publishes may take to complete at the end")
	fs.DurationVar(&f.ramp, "ramp", 0, "spread device start-up over this long")
	fs.IntVar(&f.queue, "queue", 1000, "offline queue size per device (readings; oldest dropped)")
	fs.IntVar(&f.inflight, "inflight", 32, "publishes per device awaiting acknowledgement")
	fs.DurationVar(&f.ackTimeout, "ack-timeout", 30*time.Second, "reconnect if a QoS 1 publish is not acknowledged within this")
	fs.DurationVar(&f.minBackoff, "min-backoff", 250*time.Millisecond, "first reconnect delay")
	fs.DurationVar(&f.maxBackoff, "max-backoff", 10*time.Second, "longest reconnect delay")
	fs.StringVar(&f.password, "password", "", "MQTT password; each device's username is its id (no login when empty)")
	fs.BoolVar(&f.useTLS, "tls", false, "connect with TLS (also implied by an ssl:// broker)")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify the broker with (default: system roots)")
	fs.StringVar(&f.certFile, "cert-file", "", "PEM client certificate (with --key-file)")
	fs.StringVar(&f.keyFile, "key-file", "", "PEM client key")
	fs.BoolVar(&f.insecure, "insecure-skip-verify", false, "do not verify the broker's certificate")
	fs.Float64Var(&f.malformed, "bad-malformed", 0, "share of ticks that publish an undecodable payload")
	fs.Float64Var(&f.oversized, "bad-oversized", 0, "share of ticks that publish an oversized payload")
	fs.IntVar(&f.oversizeBytes, "oversize-bytes", 65<<10+512, "size of oversized payloads (default: over the edge's 64 KiB payload limit, under its packet limit; larger ones make it drop the connection)")
	fs.Float64Var(&f.wrongTopic, "bad-wrong-topic", 0, "share of ticks that publish to a topic outside the schema")
	fs.StringVar(&f.wrongTopicName, "wrong-topic", "{stream}", "topic of wrong-topic publishes ({stream} and {device} are replaced)")
	fs.Int64Var(&f.seed, "seed", 1, "random seed: same seed, same values and timing jitter")
	fs.StringVar(&f.stateFile, "state", "", "file keeping each device's next sequence number across runs")
	fs.StringVar(&f.summaryFile, "summary", "", "write the run summary (JSON) here, for verify")
	fs.StringVar(&f.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress line")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics of the fleet on this address (/metrics)")
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cfg, err := f.fleetConfig(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 2
	}
	var st *summary.State
	if f.stateFile != "" {
		if st, err = summary.ReadState(f.stateFile); err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			return 1
		}
		cfg.State = st
	}
	if f.metricsAddr != "" {
		reg := prometheus.NewRegistry()
		cfg.Metrics = reg
		stopMetrics, err := serveMetrics(f.metricsAddr, reg, cfg.Logger)
		if err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			return 1
		}
		defer stopMetrics()
	}
	s, err := fleet.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 1
	}
	fleet.PrintSummary(stdout, s)
	code := 0
	if f.summaryFile != "" {
		if err := s.Write(f.summaryFile); err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			code = 1
		}
	}
	if st != nil {
		if err := st.Write(f.stateFile); err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			code = 1
		}
	}
	return code
}

func (f *runFlags) fleetConfig(stderr io.Writer) (fleet.Config, error) {
	enc, err := reading.ParseEncoding(f.encoding)
	if err != nil {
		return fleet.Config{}, err
	}
	switch {
	case f.qos != 0 && f.qos != 1:
		return fleet.Config{}, fmt.Errorf("--qos %d: want 0 or 1", f.qos)
	case f.devices < 1:
		return fleet.Config{}, fmt.Errorf("--devices %d: want at least 1", f.devices)
	case f.rate <= 0:
		return fleet.Config{}, fmt.Errorf("--rate %v: want more than 0", f.rate)
	case f.jitter < 0 || f.jitter > 1:
		return fleet.Config{}, fmt.Errorf("--jitter %v: want 0..1", f.jitter)
	case f.duration <= 0 && f.count == 0:
		return fleet.Config{}, errors.New("give --duration or --count, or the run never ends")
	case f.malformed < 0 || f.oversized < 0 || f.wrongTopic < 0 || f.malformed+f.oversized+f.wrongTopic > 1:
		return fleet.Config{}, errors.New("--bad-* shares must be >= 0 and add up to at most 1")
	}
	broker := f.broker
	if !strings.Contains(broker, "://") {
		scheme := "tcp://"
		if f.useTLS {
			scheme = "ssl://"
		}
		broker = scheme + broker
	}
	var tlsCfg *tls.Config
	if f.useTLS || strings.HasPrefix(broker, "ssl://") || strings.HasPrefix(broker, "tls://") {
		if tlsCfg, err = f.tlsConfig(); err != nil {
			return fleet.Config{}, err
		}
	}
	logger, err := logging.New(stderr, f.logLevel, "text")
	if err != nil {
		return fleet.Config{}, err
	}
	cfg := fleet.Config{
		Devices: f.devices, IDPrefix: f.idPrefix, IDStart: f.idStart, Seed: f.seed,
		Duration: f.duration, DrainTimeout: f.drain, Ramp: f.ramp, Logger: logger,
		Device: device.Config{
			Broker: broker, Stream: f.stream, Kind: f.kind, Encoding: enc, QoS: byte(f.qos),
			Rate: f.rate, Jitter: f.jitter, Count: f.count, QueueSize: f.queue, Inflight: f.inflight,
			Password: f.password, TLS: tlsCfg, MinBackoff: f.minBackoff, MaxBackoff: f.maxBackoff,
			AckTimeout: f.ackTimeout,
			Bad: device.BadTraffic{Malformed: f.malformed, Oversized: f.oversized, WrongTopic: f.wrongTopic,
				OversizeBytes: f.oversizeBytes, WrongTopicName: f.wrongTopicName},
		},
	}
	if !f.quiet {
		cfg.Progress = stderr
		cfg.Terminal = isTerminal(stderr)
	}
	return cfg, nil
}

func (f *runFlags) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{InsecureSkipVerify: f.insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in flag for test brokers
	if f.caFile != "" {
		pool, err := pemfile.CertPool(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		c.RootCAs = pool
	}
	if f.certFile != "" || f.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// serveMetrics serves reg on addr until the returned stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server stopped", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
