// Package gateway wires the edge daemon together: the metadata store and
// partition logs in the data directory, the embedded mochi-mqtt broker with
// the ingest hook, and the HTTP endpoint for /metrics and /healthz. Other
// components (the bridge) attach with Go and reach the logs through Topics
// and Meta.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/internal/health"
	"github.com/tributary-io/tributary/internal/pemfile"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// Gateway is one running edge daemon.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	edgeID string

	store  *meta.Store
	topics *storage.Topics
	reg    *prometheus.Registry
	hook   *ingest.Hook
	server *mqtt.Server

	mqttAddr string
	tlsAddr  string
	httpLn   net.Listener
	httpSrv  *http.Server

	// ctx bounds fsync waits and attached components; cancelled last.
	ctx    context.Context
	cancel context.CancelFunc

	api apiState // the read-only JSON API (api.go)
	// serving is set while the MQTT listeners serve (readiness, health.go).
	serving atomic.Bool

	mu         sync.Mutex
	components []component
	started    bool
}

type component struct {
	name string
	run  func(ctx context.Context) error
}

// Open opens the data directory and binds every listener, so the addresses
// are known (tests listen on port 0) before Run starts serving.
func Open(cfg Config, logger *slog.Logger) (g *Gateway, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	g = &Gateway{cfg: cfg, log: logger, reg: prometheus.NewRegistry()}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	opened := g // g is nil once an error is returned
	defer func() {
		if err != nil {
			opened.closeStorage()
			opened.cancel()
		}
	}()

	if g.store, err = meta.Open(filepath.Join(cfg.DataDir, "meta.db")); err != nil {
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	if g.edgeID, err = forwarded.ResolveEdgeID(g.store, cfg.EdgeID); err != nil {
		return nil, err
	}
	if g.topics, err = storage.OpenTopics(filepath.Join(cfg.DataDir, "logs"), g.store, cfg.Log, logger.With("component", "storage")); err != nil {
		return nil, fmt.Errorf("open logs: %w", err)
	}
	for _, t := range g.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			if l, err := g.topics.Partition(t.Name, p); err == nil && l.ReadOnlyReason() != nil {
				logger.Error("partition is read-only after recovery", "stream", t.Name, "partition", p, "err", l.ReadOnlyReason())
			}
		}
	}

	a, err := auth.New(cfg.Auth)
	if err != nil {
		return nil, err
	}
	if a.Devices() == 0 && !a.AllowAnonymous() {
		logger.Warn("no devices configured and allow_anonymous is false: every MQTT connect will be refused")
	}
	if b, seg := cfg.Ingest.BudgetBytes, cfg.Log.WithDefaults().SegmentBytes; b > 0 && b < 4*seg {
		// Only sealed segments can be dropped and each partition keeps an
		// active one, so a budget of a few segments leaves drop-oldest
		// nothing to drop and it falls back to blocking.
		logger.Warn("disk budget is small against the segment size; drop-oldest frees whole sealed segments",
			"budget_bytes", b, "segment_bytes", seg)
	}
	mapper, err := topicmap.New(cfg.TopicMap)
	if err != nil {
		return nil, err
	}
	g.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tributary_edge_damaged_ranges",
			Help: "Ranges of stored batches found damaged (CRC mismatch) and still on disk.",
		}, func() float64 { return float64(g.topics.DamagedRanges()) }), g.budgetGauge(), g.topics.FsyncSeconds())
	g.hook, err = ingest.New(g.ctx, cfg.Ingest, g.topics, a, mapper, g.reg, logger.With("component", "ingest"))
	if err != nil {
		return nil, err
	}

	if !cfg.Ingest.ReadLoopAcks {
		g.hook.EnableDeferredAcks()
	}
	if err := g.newServer(); err != nil {
		return nil, err
	}
	g.Go("retention", func(ctx context.Context) error {
		g.topics.Maintain(ctx, cfg.MaintainInterval)
		return nil
	})
	g.Go("scrub", func(ctx context.Context) error {
		g.topics.Scrub(ctx, cfg.Scrub)
		return nil
	})
	if cfg.HTTP.Address != "" && cfg.HTTP.Address != "-" {
		if g.httpLn, err = net.Listen("tcp", cfg.HTTP.Address); err != nil {
			g.server.Close()
			return nil, fmt.Errorf("http listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{Registry: g.reg}))
		health.Serve(mux, func() (string, any) { h := g.Health(); return h.Status, h }, g.Readiness)
		g.registerAPI(mux)
		if cfg.HTTP.Console {
			g.registerConsole(mux)
		}
		if cfg.HTTP.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		g.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return g, nil
}

// newServer builds the mochi broker with its memory knobs and listeners.
func (g *Gateway) newServer() error {
	mc := g.cfg.MQTT
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = mc.MaxWritesPending
	caps.ReceiveMaximum = mc.ReceiveMaximum
	caps.MaximumInflight = mc.MaxInflight
	if mc.MaxClients > 0 {
		caps.MaximumClients = mc.MaxClients
	}
	if mc.MaxSessionExpiry > 0 {
		caps.MaximumSessionExpiryInterval = mc.MaxSessionExpiry
	}
	// The packet limit is a memory bound for the read loop; the payload
	// limit proper is checked (and counted) in the hook. Topic, properties
	// and headers fit in the extra 4 KiB.
	caps.MaximumPacketSize = uint32(g.cfg.Ingest.WithDefaults().MaxPayloadBytes + 4096)
	// A PUBACK must not echo the PUBLISH's user properties (with them mochi
	// also sends reason 0x01, which MQTT.js and paho refuse).
	caps.Compatibilities.NoInheritedPropertiesOnAck = true
	g.hook.SetMaxPacketSize(caps.MaximumPacketSize)
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: mc.ClientWriteBufferBytes,
		ClientNetReadBufferSize:  mc.ClientReadBufferBytes,
		InlineClient:             true, // lets attached components publish status locally
		Logger:                   slog.New(quietMochi{g.log.Handler()}).With("component", "mqtt"),
	})
	if err := srv.AddHook(g.hook, nil); err != nil {
		return fmt.Errorf("add ingest hook: %w", err)
	}
	g.server = srv
	fail := func(err error) error {
		srv.Close()
		return err
	}
	if mc.Address != "" && mc.Address != "-" {
		addr, err := serveNet(srv, "tcp", "mqtt", mc.Address, nil)
		if err != nil {
			return fail(err)
		}
		g.mqttAddr = addr
	}
	if t := mc.TLS; t.Address != "" {
		tc, err := tlsConfig(t)
		if err != nil {
			return fail(err)
		}
		addr, err := serveNet(srv, "tls", "mqtt tls", t.Address, tc)
		if err != nil {
			return fail(err)
		}
		g.tlsAddr = addr
	}
	if mc.WebSocketAddress != "" {
		if err := addListener(srv, listeners.NewWebsocket(listeners.Config{ID: "ws", Address: mc.WebSocketAddress})); err != nil {
			return fail(fmt.Errorf("mqtt websocket listener: %w", err))
		}
	}
	return nil
}

// serveNet listens on addr, over TLS when tc is set, and serves MQTT there
// as listener id; it returns the address bound. name says which listener in
// errors.
func serveNet(srv *mqtt.Server, id, name, addr string, tc *tls.Config) (string, error) {
	var ln net.Listener
	var err error
	if tc != nil {
		ln, err = tls.Listen("tcp", addr, tc)
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		return "", fmt.Errorf("%s listen: %w", name, err)
	}
	if err := addListener(srv, listeners.NewNet(id, ln)); err != nil {
		ln.Close()
		return "", fmt.Errorf("%s listener: %w", name, err)
	}
	return ln.Addr().String(), nil
}

func tlsConfig(t TLSConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mqtt tls: load key pair: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pool, err := pemfile.CertPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt tls: client ca: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Go registers a component (the bridge) that Run starts after the broker
// and stops, by cancelling its context, before the logs are closed. It must
// be called before Run.
func (g *Gateway) Go(name string, run func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		panic("gateway: Go called after Run")
	}
	g.components = append(g.components, component{name, run})
}

// Run serves until ctx is done or a component fails, then shuts down
// gracefully: publishes in flight finish their appends, clients are
// disconnected, components stop, and the logs are flushed and closed.
func (g *Gateway) Run(ctx context.Context) error {
	g.mu.Lock()
	g.started = true
	comps := g.components
	g.mu.Unlock()

	if err := g.server.Serve(); err != nil {
		g.shutdown(nil, nil)
		return fmt.Errorf("mqtt serve: %w", err)
	}
	g.serving.Store(true)
	httpErr := make(chan error, 1)
	if g.httpSrv != nil {
		go func() {
			if err := g.httpSrv.Serve(g.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				httpErr <- err
			}
		}()
	}
	compCtx, stopComps := context.WithCancel(g.ctx)
	var wg sync.WaitGroup
	compErr := make(chan error, len(comps))
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(compCtx); err != nil && compCtx.Err() == nil {
				compErr <- fmt.Errorf("%s: %w", c.name, err)
			}
		}()
	}
	g.log.Info("edge gateway running", "edge_id", g.edgeID, "mqtt", g.mqttAddr, "tls", g.tlsAddr,
		"websocket", g.cfg.MQTT.WebSocketAddress, "http", g.HTTPAddr(), "data_dir", g.cfg.DataDir)

	var err error
	select {
	case <-ctx.Done():
	case err = <-httpErr:
		err = fmt.Errorf("http: %w", err)
	case err = <-compErr:
	}
	g.shutdown(stopComps, &wg)
	return err
}

func (g *Gateway) shutdown(stopComps context.CancelFunc, wg *sync.WaitGroup) {
	start := time.Now()
	g.log.Info("edge gateway stopping")
	g.serving.Store(false)
	// Finish the appends in flight (their clients get their acks), refuse
	// anything newer, then disconnect everyone.
	done := make(chan struct{})
	go func() { g.hook.Drain(); close(done) }()
	select {
	case <-done:
	case <-time.After(g.cfg.ShutdownTimeout):
		g.log.Error("publishes still appending after shutdown timeout; cancelling", "timeout", g.cfg.ShutdownTimeout)
		g.cancel()
		<-done
	}
	g.server.Close()
	if stopComps != nil {
		stopComps()
		wg.Wait()
	}
	if g.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.httpSrv.Shutdown(ctx)
		cancel()
	}
	g.closeStorage()
	g.cancel()
	g.log.Info("edge gateway stopped", "took", time.Since(start).Round(time.Millisecond))
}

func (g *Gateway) closeStorage() {
	if g.topics != nil {
		if err := g.topics.Close(); err != nil {
			g.log.Error("close logs", "err", err)
		}
		g.topics = nil
	}
	if g.store != nil {
		if err := g.store.Close(); err != nil {
			g.log.Error("close metadata", "err", err)
		}
		g.store = nil
	}
	if g.httpLn != nil {
		g.httpLn.Close() // already closed by Shutdown if it was served
	}
}

// damageReport is one damaged log range in /healthz; the edge is unhealthy
// until the bridge has declared the range lost to the core.
type damageReport struct {
	Stream    string `json:"stream"`
	Partition int32  `json:"partition"`
	storage.Damage
	DeclaredLost bool `json:"declared_lost"`
}

// MQTTAddr is the bound TCP listener address ("" if disabled).
func (g *Gateway) MQTTAddr() string { return g.mqttAddr }

// TLSAddr is the bound TLS listener address ("" if disabled).
func (g *Gateway) TLSAddr() string { return g.tlsAddr }

// HTTPAddr is the bound HTTP address ("" if disabled).
func (g *Gateway) HTTPAddr() string {
	if g.httpLn == nil {
		return ""
	}
	return g.httpLn.Addr().String()
}

// EdgeID is this gateway's stable identity.
func (g *Gateway) EdgeID() string { return g.edgeID }

// Topics is the partition log manager (for the bridge).
func (g *Gateway) Topics() *storage.Topics { return g.topics }

// Meta is the metadata store (for bridge cursors).
func (g *Gateway) Meta() *meta.Store { return g.store }

// Registry is the gateway's Prometheus registry; components register here.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Ingest exposes the hook's counters.
func (g *Gateway) Ingest() *ingest.Hook { return g.hook }

// Server is the embedded broker (for inline publishes and subscriptions).
func (g *Gateway) Server() *mqtt.Server { return g.server }

// quietMochi filters mochi's logging for a small device's journal: mochi
// logs every refused publish at ERROR with the whole packet (payload
// included), which the ingest hook already logs, rate-limited and without
// the payload; and it warns with an empty message on every client EOF.
type quietMochi struct{ slog.Handler }

func (q quietMochi) Handle(ctx context.Context, r slog.Record) error {
	switch {
	case r.Message == "publish packet error":
		return nil
	case r.Message == "" && r.Level == slog.LevelWarn:
		r.Level = slog.LevelDebug
		if !q.Handler.Enabled(ctx, r.Level) {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietMochi) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietMochi{q.Handler.WithAttrs(attrs)}
}

func (q quietMochi) WithGroup(name string) slog.Handler { return quietMochi{q.Handler.WithGroup(name)} }
