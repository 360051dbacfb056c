package groups

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage/meta"
)

// Config bounds the timeouts clients may ask for. Zero fields take the
// defaults, which are Kafka's broker defaults.
type Config struct {
	// MinSessionTimeout and MaxSessionTimeout bound a member's session
	// timeout; a JoinGroup outside them fails with INVALID_SESSION_TIMEOUT.
	// Defaults 6s and 30m (group.min/max.session.timeout.ms).
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration

	// MaxRebalanceTimeout caps the rebalance timeout a member asks for, so
	// one client cannot stall its group's rebalance for ever. Default 5m.
	MaxRebalanceTimeout time.Duration

	// InitialRebalanceDelay holds the first rebalance of an empty group so
	// that consumers starting together land in one generation instead of
	// one rebalance each (group.initial.rebalance.delay.ms). Default 3s;
	// negative disables the delay.
	InitialRebalanceDelay time.Duration

	// MaxGroupSize limits members per group (GROUP_MAX_SIZE_REACHED);
	// zero means unlimited.
	MaxGroupSize int

	// TickInterval is how often timeouts (sessions, rebalances, pending
	// syncs) are checked, so it is their resolution. Default 100ms.
	TickInterval time.Duration

	// PartitionExists, when set, lets OffsetCommit refuse offsets for
	// partitions the broker does not have (UNKNOWN_TOPIC_OR_PARTITION).
	// Nil accepts any topic and partition.
	PartitionExists func(topic string, partition int32) bool

	// OffsetRetention is how long the committed offsets of a group
	// without members are kept after it emptied and after its last
	// commit (offsets.retention.minutes, KIP-211). Default 7 days;
	// negative keeps them for ever.
	OffsetRetention time.Duration

	// OnStable, when set, is called with the group's membership each time
	// a rebalance completes, before the leader's SyncGroup is answered; the
	// broker replicates it so a new coordinator can Restore the group.
	OnStable func(Snapshot)

	// Registerer receives the coordinator's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (cfg Config) withDefaults() Config {
	if cfg.MinSessionTimeout <= 0 {
		cfg.MinSessionTimeout = 6 * time.Second
	}
	if cfg.MaxSessionTimeout <= 0 {
		cfg.MaxSessionTimeout = 30 * time.Minute
	}
	if cfg.MaxRebalanceTimeout <= 0 {
		cfg.MaxRebalanceTimeout = 5 * time.Minute
	}
	if cfg.InitialRebalanceDelay == 0 {
		cfg.InitialRebalanceDelay = 3 * time.Second
	}
	if cfg.InitialRebalanceDelay < 0 {
		cfg.InitialRebalanceDelay = 0
	}
	if cfg.OffsetRetention == 0 {
		cfg.OffsetRetention = 7 * 24 * time.Hour
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	return cfg
}

// ErrUnsupported is returned by Handle for an API key or version the
// coordinator does not serve; the broker should have refused it already
// from Versions.
var ErrUnsupported = errors.New("groups: unsupported request")

// versions are the API versions served. OffsetCommit and OffsetFetch stop
// before v10, which names topics by id; topics here have only names.
var versions = map[int16][2]int16{
	8:  {0, 9}, // OffsetCommit
	9:  {0, 9}, // OffsetFetch
	11: {0, 9}, // JoinGroup
	12: {0, 4}, // Heartbeat
	13: {0, 5}, // LeaveGroup
	14: {0, 5}, // SyncGroup
	15: {0, 6}, // DescribeGroups
	16: {0, 5}, // ListGroups
	42: {0, 3}, // DeleteGroups
	47: {0, 0}, // OffsetDelete
}

// Coordinator runs every consumer group of this broker.
//
// Locking: mu guards all group state and is never held across disk I/O;
// writeMu orders offset writes against group deletion (taken before mu),
// so a DeleteGroups cannot interleave with a commit's validate-then-write.
type Coordinator struct {
	store   *meta.Store
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	writeMu sync.Mutex

	mu     sync.Mutex
	groups map[string]*group
	closed bool

	// ctx is cancelled by Close: it stops the timers and the joins and
	// syncs still waiting.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewCoordinator starts a coordinator over store. Groups that have
// committed offsets in store come back as Empty groups. The coordinator's
// timer goroutine runs until Close.
func NewCoordinator(store *meta.Store, cfg Config, logger *slog.Logger) *Coordinator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{
		store:  store,
		cfg:    cfg.withDefaults(),
		log:    logger.With("component", "groups"),
		now:    time.Now,
		groups: make(map[string]*group),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.metrics = newMetrics(c)
	if cfg.Registerer != nil {
		if err := c.metrics.register(cfg.Registerer); err != nil {
			c.log.Warn("registering group metrics", "err", err)
		}
	}
	if store != nil {
		names, err := store.Groups()
		if err != nil {
			// Offsets stay readable through OffsetFetch; only the listing
			// of idle groups is incomplete.
			c.log.Error("loading groups with committed offsets", "err", err)
		}
		now := c.now()
		for _, name := range names {
			g := newGroup(name)
			g.hasOffsets = true
			g.emptySince = now
			// Retention counts from the last commit, not from this start:
			// a node that restarts often must still expire idle groups.
			if offs, err := store.FetchOffsets(name); err == nil {
				for _, oc := range offs {
					if t := time.UnixMilli(oc.CommitMs); t.After(g.lastCommit) {
						g.lastCommit = t
					}
				}
				if !g.lastCommit.IsZero() {
					g.emptySince = g.lastCommit
				}
			}
			c.groups[name] = g
		}
	}
	c.wg.Add(1)
	go c.runTimers()
	return c
}

// Versions returns the API key → [min, max] versions served.
func (c *Coordinator) Versions() map[int16][2]int16 {
	out := make(map[int16][2]int16, len(versions))
	for k, v := range versions {
		out[k] = v
	}
	return out
}

// Close stops the timer goroutine and answers every blocked JoinGroup and
// SyncGroup with COORDINATOR_NOT_AVAILABLE so clients look for the
// coordinator again. Later requests get the same error.
func (c *Coordinator) Close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		for _, g := range c.groups {
			for _, m := range g.members {
				m.replyJoin(kerr.CoordinatorNotAvailable.Code)
				m.replySync(kerr.CoordinatorNotAvailable.Code, nil)
			}
		}
		c.mu.Unlock()
		// Wait for an offset write in flight: the caller closes the
		// store next.
		c.writeMu.Lock()
		//lint:ignore SA2001 taking the lock is the wait for the writer holding it
		c.writeMu.Unlock()
		c.cancel()
		c.wg.Wait()
	})
}

// Handle serves one group-coordinator request. JoinGroup and SyncGroup may
// block until their rebalance step completes, ctx ends or the coordinator
// closes. The response has the request's version.
func (c *Coordinator) Handle(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	vr, ok := versions[req.Key()]
	if !ok {
		return nil, fmt.Errorf("groups: api key %d: %w", req.Key(), ErrUnsupported)
	}
	if v := req.GetVersion(); v < vr[0] || v > vr[1] {
		return nil, fmt.Errorf("groups: api key %d version %d: %w", req.Key(), v, ErrUnsupported)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errorResponse(req, kerr.CoordinatorNotAvailable.Code), nil
	}
	switch r := req.(type) {
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(r), nil
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(r), nil
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(ctx, r)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(r), nil
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(ctx, r)
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(r), nil
	case *kmsg.ListGroupsRequest:
		return c.listGroups(r), nil
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(r), nil
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(r), nil
	}
	return nil, fmt.Errorf("groups: request type %T: %w", req, ErrUnsupported)
}

// runTimers applies session, rebalance and pending-sync timeouts. One
// ticker for all groups keeps the goroutine count independent of the
// number of groups; timeouts are seconds, the tick a tenth of one.
func (c *Coordinator) runTimers() {
	defer c.wg.Done()
	for range tick.Every(c.ctx, c.cfg.TickInterval) {
		c.tick()
		if c.cfg.OffsetRetention > 0 {
			c.expireOffsets()
		}
	}
}

func (c *Coordinator) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for name, g := range c.groups {
		c.checkTimeouts(g, now)
		// An idle group with nothing committed has nothing left to show;
		// Kafka drops those on its offset-expiry pass.
		if g.state == stateEmpty && len(g.pending) == 0 && !g.hasOffsets {
			g.state = stateDead
			delete(c.groups, name)
		}
	}
}

// expireOffsets deletes groups that have had no members and no commits
// for the retention period, offsets included.
func (c *Coordinator) expireOffsets() {
	c.mu.Lock()
	now := c.now()
	var expired []*group
	for _, g := range c.groups {
		if g.offsetsExpired(now, c.cfg.OffsetRetention) {
			expired = append(expired, g)
		}
	}
	c.mu.Unlock()
	for _, g := range expired {
		c.writeMu.Lock()
		c.mu.Lock()
		// Re-check: a member or a commit may have come meanwhile.
		ok := !c.closed && c.groups[g.name] == g && g.offsetsExpired(c.now(), c.cfg.OffsetRetention)
		if ok {
			g.state = stateDead
			delete(c.groups, g.name)
		}
		c.mu.Unlock()
		if ok && c.store != nil {
			if err := c.store.DeleteGroup(g.name); err != nil {
				c.log.Error("expiring group offsets", "group", g.name, "err", err)
			} else {
				c.log.Info("group offsets expired", "group", g.name, "idle_since", maxTime(g.emptySince, g.lastCommit))
			}
		}
		c.writeMu.Unlock()
	}
}

// clientKey carries the requesting client's id and host to the
// coordinator; kmsg requests do not include the request header.
type clientKey struct{}

type clientInfo struct{ id, host string }

// WithClient returns a context that tells Handle which client sent the
// request (the header's client id and the peer address), shown by
// DescribeGroups and used as the prefix of new member ids.
func WithClient(ctx context.Context, clientID, host string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientInfo{id: clientID, host: host})
}

func clientFrom(ctx context.Context) clientInfo {
	ci, _ := ctx.Value(clientKey{}).(clientInfo)
	return ci
}

// newMemberID makes a member id the way Kafka does: the client id (or the
// static instance id) and a random suffix.
func newMemberID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("groups: crypto/rand: %v", err)) // documented never to fail
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}
