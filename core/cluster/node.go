package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/tick"
)

// Node is one broker's membership in the cluster: it gossips with Serf, takes part in the Raft
// metadata group (as a voter or non-voter) and keeps a local copy of the metadata. When it is the
// Raft leader (the controller) it registers brokers, adds voters and moves partition leadership
// away from failed brokers.
//
// Proposals (CreateTopic, ProposeISR, ...) may be made on any node: a non-leader forwards them to
// the leader's RPC address and returns once its own copy has applied the result, so a caller reads
// its own writes.
type Node struct {
	proposals // CreateTopic, Metadata, ... (service.go)

	cfg    Config
	logger *slog.Logger
	fsm    *FSM
	m      *metrics

	store *RaftStore
	trans *raft.NetworkTransport
	raft  *raft.Raft
	serf  *serf.Serf

	rpcLn  net.Listener
	rpcSrv *http.Server
	client *http.Client
	// rpcScheme is "https://" when the RPC runs over mutual TLS.
	rpcScheme string

	serfEvents chan serf.Event
	poke       chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	// readIdx is the commit index learned from the current leader.
	readIdx readIndex

	// started is set once Start has assigned raft, serf and the listeners; accessors that may
	// run concurrently with Start (metrics scrapes) check it first.
	started atomic.Bool

	mu     sync.Mutex
	closed bool
}

// NewNode validates the configuration; Start brings the node up.
func NewNode(cfg Config, logger *slog.Logger) (*Node, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Gossip and Raft advertise IP addresses; a host name (a container's
	// service name) is resolved once here, so deployments need no fixed
	// IPs. A changed IP after a restart is handled like any address change.
	for _, a := range []*string{&cfg.SerfAddr, &cfg.RaftAddr, &cfg.RPCAddr} {
		ip, err := resolveHost(*a)
		if err != nil {
			return nil, fmt.Errorf("cluster config: %w", err)
		}
		*a = ip
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("broker", cfg.BrokerID)
	n := &Node{
		cfg:        cfg,
		logger:     logger,
		fsm:        NewFSM(logger.With("component", "metadata")),
		serfEvents: make(chan serf.Event, 256),
		poke:       make(chan struct{}, 1),
		rpcScheme:  "http://",
		client:     &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}},
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	n.m = newMetrics(reg, n)
	n.proposals = proposals{cfg: cfg, fsm: n.fsm, propose: n.propose}
	n.fsm.onElection = func(_ string, _ int32, leader int32) {
		if leader == NoLeader {
			n.m.elections.WithLabelValues("offline").Inc()
		} else {
			n.m.elections.WithLabelValues("elected").Inc()
		}
	}
	return n, nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// Start opens the Raft state in DataDir, starts the transports and Serf, and joins the configured
// peers in the background. ctx bounds start-up only; Close stops the node.
func (n *Node) Start(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	if n.cancel != nil || n.isClosed() {
		return errors.New("start cluster node: already started or closed")
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := os.MkdirAll(n.cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	logw := logBridge{logger: n.logger} // its lines name their subsystem

	if n.store, err = OpenRaftStore(filepath.Join(n.cfg.DataDir, "raft.db")); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(n.cfg.DataDir, 2, logw)
	if err != nil {
		return fmt.Errorf("start cluster node: snapshot store: %w", err)
	}
	tlsServer, tlsClient, err := n.cfg.Security.tlsConfigs()
	if err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	if n.cfg.Faults != nil {
		n.trans, err = newFaultRaftTransport(n.cfg.Faults, n.cfg.BrokerID, n.cfg.RaftAddr, logw)
	} else if tlsServer != nil {
		n.trans, err = newTLSRaftTransport(n.cfg.RaftAddr, tlsServer, tlsClient, logw)
	} else {
		n.trans, err = raft.NewTCPTransport(n.cfg.RaftAddr, nil, 3, 10*time.Second, logw)
	}
	if err != nil {
		return fmt.Errorf("start cluster node: raft transport on %s: %w", n.cfg.RaftAddr, err)
	}
	if n.rpcLn, err = net.Listen("tcp", n.cfg.RPCAddr); err != nil {
		return fmt.Errorf("start cluster node: rpc listener on %s: %w", n.cfg.RPCAddr, err)
	}
	if tlsServer != nil {
		n.rpcLn = tls.NewListener(n.rpcLn, tlsServer)
		n.rpcScheme = "https://"
		n.client.Transport.(*http.Transport).TLSClientConfig = tlsClient
	}

	rc := raft.DefaultConfig()
	rc.LocalID = serverID(n.cfg.BrokerID)
	rc.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: logw, Level: hclog.Info})
	t := n.cfg.Raft
	setPositive(&rc.HeartbeatTimeout, t.HeartbeatTimeout)
	setPositive(&rc.ElectionTimeout, t.ElectionTimeout)
	setPositive(&rc.LeaderLeaseTimeout, t.LeaderLeaseTimeout)
	setPositive(&rc.CommitTimeout, t.CommitTimeout)
	setPositive(&rc.SnapshotInterval, t.SnapshotInterval)
	setPositive(&rc.SnapshotThreshold, t.SnapshotThreshold)
	setPositive(&rc.TrailingLogs, t.TrailingLogs)
	existing, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	if n.raft, err = raft.NewRaft(rc, n.fsm, n.store, n.store, snaps, n.trans); err != nil {
		return fmt.Errorf("start cluster node: raft: %w", err)
	}

	n.rpcSrv = &http.Server{Handler: n.rpcHandler(), ReadHeaderTimeout: 5 * time.Second}
	n.wg.Go(func() {
		if err := n.rpcSrv.Serve(n.rpcLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logger.Error("cluster rpc server stopped", "err", err)
		}
	})

	if err := n.startSerf(); err != nil {
		return fmt.Errorf("start cluster node: %w", err)
	}
	n.wg.Go(func() { n.serfEventLoop(runCtx) })
	n.wg.Go(func() { n.joinLoop(runCtx) })
	n.wg.Go(func() { n.controllerLoop(runCtx, !existing) })
	n.wg.Go(func() { n.learnLoop(runCtx) })
	n.started.Store(true)
	n.logger.Info("cluster node started", "raft", n.trans.LocalAddr(), "serf", n.cfg.SerfAddr,
		"rpc", n.rpcLn.Addr().String(), "existing_state", existing)
	return nil
}

// setPositive overrides a library default with a configured value; zero
// or less keeps the default.
func setPositive[T int | uint64 | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// Close stops the node without leaving the cluster: to the others it looks like a crash, so the
// controller moves its partitions, and a restart on the same DataDir rejoins with its Raft state.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	if n.cancel != nil {
		n.cancel()
	}
	var errs []error
	if n.serf != nil {
		if err := n.serf.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("serf shutdown: %w", err))
		}
	}
	// Raft first: a forwarded proposal blocked in Apply (no quorum) then fails at once instead of
	// holding up the RPC server's shutdown. Raft's shutdown waits for its replication goroutines;
	// one stuck writing to a frozen peer is released when the transport closes below, so the
	// wait is bounded rather than left to the peer.
	if n.raft != nil {
		ctx, cancel := context.WithTimeout(context.Background(), raftShutdownTimeout)
		if err := withinCtx(ctx, func() error { return n.raft.Shutdown().Error() }); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				n.logger.Error("raft did not stop in time; closing its transport under it", "after", raftShutdownTimeout)
			} else {
				errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
			}
		}
		cancel()
	}
	if n.rpcSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.rpcSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("rpc shutdown: %w", err))
		}
		cancel()
	} else if n.rpcLn != nil {
		n.rpcLn.Close()
	}
	n.client.CloseIdleConnections()
	n.wg.Wait()
	if n.trans != nil {
		if err := n.trans.Close(); err != nil {
			errs = append(errs, fmt.Errorf("raft transport close: %w", err))
		}
	}
	if n.store != nil {
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close cluster node %d: %w", n.cfg.BrokerID, err)
	}
	return nil
}

// Leave is a controlled shutdown: the broker tells Serf it is leaving, hands Raft leadership
// over if it holds it, waits (bounded by ctx) until the controller has marked it down, which
// moves its partition leadership while it is still reachable, and then closes. A restart on the
// same DataDir rejoins as before.
func (n *Node) Leave(ctx context.Context) error {
	if !n.started.Load() || n.isClosed() {
		return ErrClosed
	}
	// When the whole cluster stops at once, every other broker is leaving
	// too: nobody is left to take Raft leadership, hear the leave broadcast
	// or mark this broker down, and the steps below would wait out ctx and
	// report a failed handover (the last broker of `make demo` did, for the
	// full 5 s). So they stop waiting once Serf sees every other broker
	// leaving or gone by a leave. A broker that failed (crashed, frozen or
	// cut off; on a loaded machine gossip can mark a live one failed) still
	// counts: its partitions may need this handover.
	ctx, cancel := context.WithCancel(ctx)
	var alone atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for range tick.Every(ctx, 50*time.Millisecond) {
			if !n.othersStaying() {
				alone.Store(true)
				cancel()
				return
			}
		}
	}()
	errs := n.handOver(ctx)
	cancel()
	<-watched
	if alone.Load() {
		errs = nil // nothing to hand over to
	}
	if err := n.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave cluster: %w", err)
	}
	return nil
}

// othersStaying reports whether Serf knows another broker that is not
// leaving and has not left.
func (n *Node) othersStaying() bool {
	for _, m := range n.members() {
		if m.ID != n.cfg.BrokerID && m.Status != serf.StatusLeaving && m.Status != serf.StatusLeft {
			return true
		}
	}
	return false
}

// handOver is Leave's controlled part, each step bounded by ctx: with
// frozen peers a leadership transfer or a leave broadcast waits on its own
// timeouts (10 s and more), and Close ends whatever is still running.
func (n *Node) handOver(ctx context.Context) []error {
	var errs []error
	if n.IsController() {
		if err := withinCtx(ctx, func() error { return n.raft.LeadershipTransfer().Error() }); err != nil {
			errs = append(errs, fmt.Errorf("raft leadership transfer: %w", err))
		}
	}
	if err := withinCtx(ctx, n.serf.Leave); err != nil {
		errs = append(errs, fmt.Errorf("serf leave: %w", err))
	}
	for {
		w := n.fsm.Watch()
		if b, ok := n.fsm.Metadata().Brokers[n.cfg.BrokerID]; !ok || !b.Alive {
			break
		}
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("wait to be marked down: %w", ctx.Err()))
		case <-w:
			continue
		}
		break
	}
	return errs
}

func (n *Node) isClosed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.closed
}

// ID is this broker's id.
func (n *Node) ID() int32 { return n.cfg.BrokerID }

// RaftAddr is the Raft transport's address (useful when configured with port 0).
func (n *Node) RaftAddr() string { return string(n.trans.LocalAddr()) }

// RPCAddr is the forwarding listener's address.
func (n *Node) RPCAddr() string { return n.rpcLn.Addr().String() }

// IsController reports whether this node is the Raft leader.
func (n *Node) IsController() bool { return n.started.Load() && n.raft.State() == raft.Leader }

// Controller returns the broker id of the Raft leader, if one is known.
func (n *Node) Controller() (int32, bool) {
	if !n.started.Load() {
		return 0, false
	}
	_, id := n.raft.LeaderWithID()
	return brokerOf(id)
}

// MetadataCurrent reports whether this node's metadata has caught up: a Raft leader is known, this
// node has learned the leader's commit index (readindex.go) and has applied everything up to it. A
// broker restarted on old state waits for it before acting on its copy, which may be stale (e.g.
// name it leader of a partition at an epoch the cluster has moved past).
func (n *Node) MetadataCurrent() bool {
	if !n.started.Load() {
		return false
	}
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return false
	}
	learned, ok := n.readIdx.get(id)
	return ok && n.fsm.AppliedIndex() >= learned
}

// resolveHost turns host:port with a host name into ip:port (IPv4 first);
// an IP literal or an empty host is kept.
func resolveHost(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || net.ParseIP(host) != nil {
		return addr, nil // Validate has reported malformed addresses
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return "", fmt.Errorf("address %q: cannot resolve %s: %v", addr, host, err)
	}
	pick := ips[0]
	for _, ip := range ips {
		if ip.To4() != nil {
			pick = ip
			break
		}
	}
	return net.JoinHostPort(pick.String(), port), nil
}

// raftShutdownTimeout bounds raft.Shutdown in Close.
const raftShutdownTimeout = 5 * time.Second

// withinCtx runs fn and returns its error, or ctx's once ctx ends first (fn
// then goes on in the background until what it waits for is closed).
func withinCtx(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// brokerOf is the broker id of a Raft server id.
func brokerOf(id raft.ServerID) (int32, bool) {
	if id == "" {
		return 0, false
	}
	v, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(v), true
}
