// Package server is the core broker: the Kafka-protocol listener, the
// per-connection request loop and dispatcher, one file per Kafka API (named
// by API key, 00_produce.go …), replication (replica.go, fetcher.go) and the
// HTTP endpoint for metrics and health. A broker alone is a cluster of one:
// the same metadata (core/cluster.Service), handlers and replication run
// whether it has peers or not. Partition data lives in the storage package;
// consumer groups are delegated to a GroupCoordinator.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/groups"
	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/internal/flagcheck"
	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// GroupCoordinator handles the consumer-group APIs (OffsetCommit,
// OffsetFetch, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, DescribeGroups,
// ListGroups, DeleteGroups). Handle may block (JoinGroup) until ctx ends.
type GroupCoordinator interface {
	Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, error)
	Versions() map[int16][2]int16
	Close()
}

// NewGroupCoordinator builds the coordinator for a server from its metadata
// store. Start uses core/groups configured from Config.Groups when given nil.
type NewGroupCoordinator func(store *meta.Store, logger *slog.Logger) GroupCoordinator

// Server is one running core broker. Start it with Start and stop it with
// Close; it owns every goroutine it starts.
type Server struct {
	cfg    Config
	logger *slog.Logger
	m      *metrics

	store  *meta.Store
	topics *storage.Topics
	groups GroupCoordinator
	// txns coordinates transactions; txnb is its side in the broker (txn.go).
	txns *txns.Coordinator
	txnb *txnBroker

	// cluster is the Raft-backed cluster.Node with Config.Cluster, else a
	// cluster of one; replicas follows its metadata.
	cluster  cluster.Service
	replicas *replicaManager

	ln        net.Listener // the first listener's
	listeners []*listener
	sec       *security
	secMu     sync.Mutex // serializes saving security state
	httpLn    net.Listener
	httpSrv   *http.Server
	// consoleLn is the web console's listener (console.go), nil when off.
	consoleLn net.Listener
	host      string // advertised host
	port      int32  // advertised port
	versions  []kmsg.ApiVersionsResponseApiKey

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start opens the data directory, binds the listeners and starts serving.
// newGroups may be nil for the default coordinator.
func Start(cfg Config, logger *slog.Logger, newGroups NewGroupCoordinator) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("core config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	store, err := meta.Open(filepath.Join(cfg.DataDir, "meta.db"))
	if err != nil {
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	topics, err := storage.OpenTopics(filepath.Join(cfg.DataDir, "logs"), store, cfg.Log, logger.With("component", "storage"))
	if err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("open topics: %w", err)
	}
	// The modes every append here names, for producers a log replays.
	topics.SetSequenceModes(forwarded.Sequences)
	s := &Server{
		cfg:    cfg,
		logger: logger,
		m:      newMetrics(),
		store:  store,
		topics: topics,
		conns:  make(map[net.Conn]struct{}),
	}
	damaged := gaugeFunc("tributary_core_damaged_ranges",
		"Ranges of stored batches found damaged (CRC mismatch) and not yet replaced or removed.",
		func() float64 { return float64(topics.DamagedRanges()) })
	s.m.reg.MustRegister(damaged, partitionCollector{s}, topics.FsyncSeconds())
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if newGroups == nil {
		newGroups = s.defaultGroups
	}
	s.groups = newGroups(store, logger)
	s.versions = s.apiVersions()
	// Close undoes whichever of these had started when one fails.
	for _, start := range []func() error{s.startTxns, s.setupSecurity, s.listen, s.startCluster, s.startConsole} {
		if err := start(); err != nil {
			_ = s.Close()
			return nil, err
		}
	}

	for _, l := range s.listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.acceptLoop(l)
		}()
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		s.topics.Maintain(s.ctx, cfg.MaintainInterval)
	}()
	go func() {
		defer s.wg.Done()
		s.topics.Scrub(s.ctx, cfg.Scrub)
	}()
	if s.httpLn != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Error("http server stopped", "err", err)
			}
		}()
	}
	s.logger.Info("core broker serving", "kafka", s.ln.Addr().String(), "advertised", s.AdvertisedAddr(),
		"http", s.HTTPAddr(), "console", s.ConsoleAddr(), "data_dir", cfg.DataDir)
	return s, nil
}

// defaultGroups is the core/groups coordinator with this server's metrics
// registry and partition lookup.
func (s *Server) defaultGroups(store *meta.Store, logger *slog.Logger) GroupCoordinator {
	g := s.cfg.Groups
	return groups.NewCoordinator(store, groups.Config{
		MinSessionTimeout:     g.MinSessionTimeout,
		MaxSessionTimeout:     g.MaxSessionTimeout,
		MaxRebalanceTimeout:   g.MaxRebalanceTimeout,
		InitialRebalanceDelay: g.InitialRebalanceDelay,
		MaxGroupSize:          g.MaxGroupSize,
		// The metadata decides, not the local disk: a coordinator takes
		// offsets for partitions stored on other brokers.
		PartitionExists: func(topic string, partition int32) bool {
			t, ok := s.cluster.Topic(topic)
			return ok && partition >= 0 && int(partition) < len(t.Partitions)
		},
		OnStable:   s.replicateGroup,
		Registerer: s.m.reg,
	}, logger)
}

func (s *Server) listen() error {
	for _, lc := range s.cfg.listeners() {
		l, err := s.bindListener(lc)
		if err != nil {
			return err
		}
		s.listeners = append(s.listeners, l)
	}
	first := s.listeners[0]
	s.ln, s.host, s.port = first.ln, first.host, first.port

	if !flagcheck.Disabled(s.cfg.HTTPAddr) {
		hl, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen http %s: %w", s.cfg.HTTPAddr, err)
		}
		s.httpLn = hl
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.m.reg, promhttp.HandlerOpts{}))
		s.serveHealth(mux)
		s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return nil
}

// Addr is the Kafka listener's bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// AdvertisedAddr is the address clients are told to connect to.
func (s *Server) AdvertisedAddr() string {
	return net.JoinHostPort(s.host, strconv.Itoa(int(s.port)))
}

// HTTPAddr is the metrics listener's bound address, or "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Topics exposes the topic manager (for tools and tests).
func (s *Server) Topics() *storage.Topics { return s.topics }

func (s *Server) acceptLoop(l *listener) {
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: keep the listener and
			// try again shortly rather than stop serving.
			s.logger.Error("accept failed; retrying", "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-s.ctx.Done():
				return
			}
		}
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.m.connections.Inc()
		s.m.connTotal.Inc()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, nc)
				s.mu.Unlock()
				s.m.connections.Dec()
			}()
			s.serveConn(s.ctx, nc, l)
		}()
	}
}

// Close stops accepting, ends every connection (waking long polls and
// blocked group joins), stops maintenance and closes the logs, which flushes
// them. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.cluster != nil && s.cfg.Replication.ShutdownHandover > 0 {
			// Controlled shutdown: leadership moves while this broker still
			// answers, so clients and followers switch without waiting for
			// failure detection.
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Replication.ShutdownHandover)
			if err := s.cluster.Leave(ctx); err != nil {
				s.logger.Warn("controlled shutdown incomplete; closing anyway", "err", err)
			}
			cancel()
		}
		// Listeners first: a client dialling now is refused, which every
		// client retries, instead of being accepted and then cut before
		// its first answer, which some (franz-go) take for a TLS or SASL
		// misconfiguration and do not retry.
		var errs []error
		for _, l := range s.listeners {
			if err := l.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("close kafka listener %s: %w", l.cfg.Name, err))
			}
		}
		s.mu.Lock()
		s.cancel()
		for nc := range s.conns {
			_ = nc.Close()
		}
		s.mu.Unlock()
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop http: %w", err))
			}
			cancel()
		} else if s.httpLn != nil {
			_ = s.httpLn.Close()
		}
		s.wg.Wait()
		if s.txns != nil {
			s.txns.Close()
			s.txnb.conns.close()
		}
		if s.groups != nil {
			s.groups.Close()
		}
		if s.cluster != nil { // nil when Start failed before it
			if err := s.cluster.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close cluster node: %w", err))
			}
		}
		if err := s.topics.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close topics: %w", err))
		}
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close metadata: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		s.logger.Info("core broker stopped")
	})
	return s.closeErr
}
