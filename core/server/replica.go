package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
)

// isrBehindHW is logged if a follower enters the ISR without every record
// below the high watermark, which the leader must never let happen: tests
// of the cluster look for it in the brokers' logs.
const isrBehindHW = "follower joined the ISR behind the high watermark: it lacks acknowledged records"

// errNotEnoughReplicas refuses an acks=all produce while the ISR is smaller
// than min.insync.replicas; errNotEnoughAfterAppend is the same found while
// waiting for the ISR.
var (
	errNotEnoughReplicas    = errors.New("core: fewer in-sync replicas than min.insync.replicas")
	errNotEnoughAfterAppend = errors.New("core: in-sync replicas fell below min.insync.replicas while waiting")
)

type topicPartition struct {
	topic string
	part  int32
}

// replicaManager follows the cluster metadata: it stores locally only the
// partitions whose replica set includes this broker (creating them when the
// metadata assigns them, deleting them when it no longer does and when their
// topic goes), and keeps one replica per such partition, leading or
// following it as the metadata says.
type replicaManager struct {
	s    *Server
	self int32

	mu       sync.Mutex
	replicas map[topicPartition]*replica
	// seen are the topics this process has seen in the metadata. Only
	// those are deleted locally when they leave it: right after a restart
	// the metadata may not have caught up yet, and an empty view must not
	// wipe the logs.
	seen map[string]bool
	// ready is set once the node's metadata has caught up after start;
	// until then nothing is hosted, led or deleted.
	ready atomic.Bool

	wg sync.WaitGroup // fetchers

	// savedHWs is the high-watermark checkpoint found at start, where new
	// replicas begin; lastHWs is what was last written (hwcheckpoint.go).
	savedHWs map[hwKey]int64
	lastHWs  map[hwKey]int64

	// beforeISRProposal, set by tests, runs after a leader has chosen
	// followers to add to an ISR and before it proposes the change.
	beforeISRProposal atomic.Pointer[func(r *replica, join []int32)]

	isrChanges  *prometheus.CounterVec
	fetchErrors prometheus.Counter
	truncations prometheus.Counter
}

func newReplicaManager(s *Server) *replicaManager {
	m := &replicaManager{s: s, self: s.cfg.NodeID, replicas: map[topicPartition]*replica{}, seen: map[string]bool{},
		isrChanges: counterVec("tributary_core_isr_changes_total",
			"ISR changes this broker made as partition leader, by kind (shrink, expand).", "kind"),
		fetchErrors: counter("tributary_core_replica_fetch_errors_total",
			"Failed follower fetch rounds (leader unreachable, fenced epoch, append refused)."),
		truncations: counter("tributary_core_replica_truncations_total",
			"Divergent follower tails cut after a leader change."),
	}
	saved, err := readHWCheckpoint(s.cfg.DataDir)
	if err != nil {
		// A lower bound only: starting from 0 is safe, just slower to serve.
		s.logger.Warn("high-watermark checkpoint unreadable; replicas start from 0", "err", err)
		saved = map[hwKey]int64{}
	}
	m.savedHWs, m.lastHWs = saved, saved
	partitions := func(pick func(r *replica) bool) func() float64 {
		return func() float64 {
			m.mu.Lock()
			defer m.mu.Unlock()
			n := 0
			for _, r := range m.replicas {
				if pick(r) {
					n++
				}
			}
			return float64(n)
		}
	}
	s.m.reg.MustRegister(m.isrChanges, m.fetchErrors, m.truncations,
		gaugeFunc("tributary_core_leader_partitions", "Partitions this broker leads.",
			partitions(func(r *replica) bool { return r.isLeader() })),
		gaugeFunc("tributary_core_under_replicated_partitions",
			"Partitions this broker leads whose ISR is smaller than their replica set.",
			partitions(func(r *replica) bool {
				st := r.state()
				return st.Leader == r.self && len(st.ISR) < len(st.Replicas)
			})))
	return m
}

// run reconciles at every metadata change (and every second, retrying what
// failed) and runs the leader's ISR checks, until ctx ends; then it stops
// every fetcher.
func (m *replicaManager) run(ctx context.Context) {
	defer m.stopAll()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastFull, lastCheckpoint := time.Time{}, time.Now()
	for {
		watch := m.s.cluster.Watch()
		if !m.ready.Load() && m.s.cluster.MetadataCurrent() {
			m.ready.Store(true)
			lastFull = time.Time{}
		}
		if time.Since(lastFull) > time.Second {
			m.reconcile()
			lastFull = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-watch:
			m.reconcile()
			lastFull = time.Now()
		case <-tick.C:
			m.checkISR(ctx)
			if time.Since(lastCheckpoint) >= time.Second {
				m.checkpointHWs()
				lastCheckpoint = time.Now()
			}
		}
	}
}

// catchUp marks the manager ready and reconciles at once if the metadata
// is already current (always, for a cluster of one).
func (m *replicaManager) catchUp() {
	if !m.ready.Load() && m.s.cluster.MetadataCurrent() {
		m.ready.Store(true)
		m.reconcile()
	}
}

func (m *replicaManager) stopAll() {
	m.mu.Lock()
	for _, r := range m.replicas {
		r.stopFetcher()
	}
	m.mu.Unlock()
	m.wg.Wait()
	m.checkpointHWs()
}

// lookup finds the replica of a partition this broker holds.
func (m *replicaManager) lookup(topic string, part int32) (*replica, error) {
	m.mu.Lock()
	r, ok := m.replicas[topicPartition{topic, part}]
	m.mu.Unlock()
	if ok {
		return r, nil
	}
	if !m.ready.Load() {
		// Restarted and not caught up with the cluster's metadata yet: the
		// topic may well exist; clients retry rather than give up on it.
		return nil, errNotLeader
	}
	t, ok := m.s.cluster.Topic(topic)
	if !ok || part < 0 || int(part) >= len(t.Partitions) {
		return nil, storage.ErrUnknownTopic
	}
	// Known but not (yet) hosted here.
	return nil, errNotLeader
}

// reconcile brings local logs and replicas in line with the metadata.
func (m *replicaManager) reconcile() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.s.ctx.Err() != nil || !m.ready.Load() {
		return
	}
	md := m.s.cluster.Metadata()
	topics := m.s.topics
	internalLed := map[string]int{}
	// Local data of another incarnation of a topic (deleted, and maybe
	// created again, while this broker was down) goes first: it must never
	// be served as the current topic's.
	m.dropStaleIncarnations(md)
	// Topics gone from the metadata go locally too.
	for _, info := range topics.List() {
		if _, ok := md.Topics[info.Name]; ok || !m.seen[info.Name] {
			continue
		}
		delete(m.seen, info.Name)
		for tp, r := range m.replicas {
			if tp.topic == info.Name {
				r.stopFetcher()
				delete(m.replicas, tp)
			}
		}
		if err := topics.Delete(info.Name); err != nil {
			m.s.logger.Warn("delete local topic", "topic", info.Name, "err", err)
		} else {
			_ = m.s.store.DeleteValue(topicIDKey(info.Name))
			m.s.logger.Info("deleted topic", "topic", info.Name)
		}
	}
	for _, t := range md.Topics {
		m.seen[t.Name] = true
		hosted, ok := m.defineTopic(t)
		if !ok {
			continue
		}
		m.applyTopicConfig(t)
		minISR := m.s.cfg.Replication.MinInsyncReplicas
		if v, err := strconv.Atoi(t.Config[minISRConfig]); err == nil && v > 0 {
			minISR = v
		}
		for _, p := range t.Partitions {
			tp := topicPartition{t.Name, p.Partition}
			r, have := m.replicas[tp]
			if !slices.Contains(p.Replicas, m.self) {
				if have {
					r.stopFetcher()
					delete(m.replicas, tp)
				}
				if hosted[p.Partition] {
					m.dropLost(t.Name, p.Partition)
				}
				continue
			}
			if !have {
				if err := topics.HostPartition(t.Name, p.Partition); err != nil {
					m.s.logger.Error("create replica log", "topic", t.Name, "partition", p.Partition, "err", err)
					continue
				}
				l, err := topics.Partition(t.Name, p.Partition)
				if err != nil {
					m.s.logger.Error("open replica log", "topic", t.Name, "partition", p.Partition, "err", err)
					continue
				}
				r = &replica{m: m, topic: t.Name, topicID: t.ID, part: p.Partition, log: l, self: m.self,
					notify: make(chan struct{}), followers: map[int32]*followerState{}, offsetsReady: -1,
					st: cluster.PartitionState{Leader: cluster.NoLeader, LeaderEpoch: -1},
					hw: min(m.savedHWs[hwKey{t.Name, t.ID, p.Partition}], l.NextOffset())}
				m.replicas[tp] = r
			}
			r.setMinISR(minISR)
			wasLeader := r.isLeader()
			r.update(p, md)
			if !wasLeader && r.isLeader() && strings.HasPrefix(t.Name, "__") {
				internalLed[t.Name]++
			}
			r.ensureFetcher(md)
		}
	}
	for topic, n := range internalLed {
		m.s.logger.Info("leading internal partitions", "topic", topic, "partitions", n)
	}
}

// defineTopic makes the local definition of t match the metadata's (its
// config and partition count; placed, hosting the partitions assigned to
// this broker) and returns the set of partitions stored here. False when it
// could not, to be retried at the next pass.
func (m *replicaManager) defineTopic(t *cluster.Topic) (map[int32]bool, bool) {
	topics := m.s.topics
	want := int32(len(t.Partitions))
	info, ok := topics.Get(t.Name)
	switch {
	case !ok:
		lc, err := topicLogConfig(t.Config)
		if err != nil {
			m.s.logger.Error("topic config from metadata", "topic", t.Name, "err", err)
			lc = storage.LogConfig{}
		}
		var mine []int32
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, m.self) {
				mine = append(mine, p.Partition)
			}
		}
		if err := topics.CreatePlaced(t.Name, want, lc, mine); err != nil && !errors.Is(err, storage.ErrTopicExists) {
			m.s.logger.Error("create local topic", "topic", t.Name, "err", err)
			return nil, false
		}
		m.recordIncarnation(t)
	case info.Partitions < want:
		if err := topics.AddPartitions(t.Name, want); err != nil {
			m.s.logger.Error("add local partitions", "topic", t.Name, "err", err)
			return nil, false
		}
	}
	info, ok = topics.Get(t.Name)
	hosted := make(map[int32]bool, len(info.Hosted))
	for _, p := range info.Hosted {
		hosted[p] = true
	}
	return hosted, ok
}

// dropLost deletes the local data of a partition the metadata does not
// assign to this broker: stored by a broker from before placement (every
// broker kept every partition), or assigned elsewhere since. The manager
// acts only once the metadata has caught up (ready), and checks again here,
// right before deleting, that it still is: data is never deleted on a view
// that may lack a later assignment.
func (m *replicaManager) dropLost(topic string, part int32) {
	if !m.s.cluster.MetadataCurrent() {
		return // the next pass retries
	}
	if err := m.s.topics.DropPartition(topic, part); err != nil {
		m.s.logger.Error("delete data of a partition not replicated here", "topic", topic, "partition", part, "err", err)
	}
}

// checkISR runs each led partition's ISR shrink and expand checks.
func (m *replicaManager) checkISR(ctx context.Context) {
	m.mu.Lock()
	var led []*replica
	for _, r := range m.replicas {
		if r.isLeader() {
			led = append(led, r)
		}
	}
	m.mu.Unlock()
	for _, r := range led {
		if ctx.Err() != nil {
			return
		}
		r.checkISR(ctx, m.s.cfg.Replication.LagTimeMax)
	}
}

// followerState is what a leader knows of one follower.
type followerState struct {
	fetchOffset int64     // the follower has (fsynced) everything below it
	caughtUpAt  time.Time // last fetch at or past the leader's log end
	lastFetch   time.Time
	prevLEO     int64 // the leader's log end at lastFetch
}

// replica is this broker's copy of one partition, leading or following.
type replica struct {
	m       *replicaManager
	topic   string
	topicID string // the incarnation (cluster.Topic.ID)
	part    int32
	log     *storage.Log
	self    int32

	// leadMu is held shared by a leader's appends, from their check of the
	// leader epoch to the end of their write, and exclusively while the
	// leader epoch changes: no append straddles a change of leadership.
	// Taken before mu.
	leadMu sync.RWMutex

	mu          sync.Mutex
	st          cluster.PartitionState
	minISR      int
	hw          int64
	followers   map[int32]*followerState // leader only
	leaderSince time.Time
	epochStart  int64 // log end when this epoch's leadership began
	// joining are followers this leader has proposed adding to the ISR of
	// the state joiningAt. Until that state is replaced they count as ISR
	// members for the high watermark (Kafka's "maximal ISR"): a follower
	// chosen because it had everything below the HW must not fall behind
	// it while the proposal is in flight, or it would join the ISR without
	// records already acknowledged, and could be elected without them.
	joining   []int32
	joiningAt cluster.PartitionState
	notify    chan struct{} // closed when the HW moves, the log grows or leadership changes

	// offsetsReady is the leader epoch whose offsets replay finished
	// (offsets topic only): groups are answered for from then on.
	offsetsReady int32

	fetchCancel context.CancelFunc
	fetchDone   chan struct{}
	fetchAddr   string // the leader address the running fetcher dials
}

func (r *replica) setMinISR(v int) {
	r.mu.Lock()
	r.minISR = v
	r.mu.Unlock()
}

// wakeLocked wakes long polls and acks=all waiters.
func (r *replica) wakeLocked() {
	close(r.notify)
	r.notify = make(chan struct{})
}

func (r *replica) isLeader() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Leader == r.self
}

// leading reports whether this broker leads the partition, and at which
// leader epoch.
func (r *replica) leading() (int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.LeaderEpoch, r.st.Leader == r.self
}

// coordinates reports whether this broker leads this offsets partition and
// has loaded its committed offsets.
func (r *replica) coordinates() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.Leader == r.self && r.offsetsReady == r.st.LeaderEpoch
}

func (r *replica) state() cluster.PartitionState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// update applies the partition's metadata: on a new leader epoch this broker
// becomes leader (stops fetching, starts tracking followers) or follower
// (fetches from the new leader after truncating by leader epoch).
func (r *replica) update(p cluster.PartitionState, md *cluster.Snapshot) {
	// A new leader epoch waits for appends in flight (leadMu).
	epochLocked := false
	for {
		r.mu.Lock()
		if epochLocked || p.LeaderEpoch == r.st.LeaderEpoch {
			break
		}
		r.mu.Unlock()
		r.leadMu.Lock()
		epochLocked = true
	}
	unlock := func() {
		r.mu.Unlock()
		if epochLocked {
			r.leadMu.Unlock()
		}
	}
	old := r.st
	if p.LeaderEpoch < old.LeaderEpoch || (p.LeaderEpoch == old.LeaderEpoch && p.PartitionEpoch <= old.PartitionEpoch) {
		unlock()
		return // nothing new (or an older view than one already applied)
	}
	r.st = p
	newEpoch := p.LeaderEpoch != old.LeaderEpoch
	if newEpoch && p.Leader == r.self {
		r.followers = map[int32]*followerState{}
		r.leaderSince = time.Now()
		r.epochStart = r.log.NextOffset()
		r.hw = min(r.hw, r.log.NextOffset())
		// Internal topics (__consumer_offsets: 50 partitions by default)
		// are summed up by reconcile instead of a line each.
		level := slog.LevelInfo
		if strings.HasPrefix(r.topic, "__") {
			level = slog.LevelDebug
		}
		r.m.s.logger.Log(context.Background(), level, "leading partition", "topic", r.topic, "partition", r.part,
			"epoch", p.LeaderEpoch, "log_end", r.epochStart, "isr", p.ISR)
	}
	if p.Leader == r.self && !newEpoch {
		for _, id := range p.ISR {
			if f := r.followers[id]; f != nil && !slices.Contains(old.ISR, id) && f.fetchOffset < r.hw {
				// Never expected: a follower counts for the HW from the
				// moment it is proposed (maximalISRLocked).
				r.m.s.logger.Error(isrBehindHW, "topic", r.topic, "partition", r.part,
					"follower", id, "fetch_offset", f.fetchOffset, "high_watermark", r.hw)
			}
		}
	}
	if p.Leader == r.self {
		r.updateHWLocked()
	}
	r.wakeLocked()
	unlock()
	if !newEpoch {
		return
	}
	r.stopFetcher()
	if p.Leader != r.self && r.topic == cluster.OffsetsTopic {
		r.m.s.unloadTxnPartition(r.part) // transactions (txn_cluster.go)
	}
	if p.Leader == r.self && r.topic == cluster.OffsetsTopic {
		if err := r.loadOffsets(); err != nil {
			r.m.s.logger.Error("loading committed offsets; the partition's groups stay unavailable here",
				"partition", r.part, "err", err)
			return
		}
		r.mu.Lock()
		r.offsetsReady = p.LeaderEpoch
		r.mu.Unlock()
	}
	if p.Leader == r.self || p.Leader == cluster.NoLeader {
		return
	}
	b, ok := md.Brokers[p.Leader]
	if !ok {
		return
	}
	r.startFetcher(p.Leader, b.KafkaAddr, p.LeaderEpoch)
}

// updateHWLocked raises the high watermark to what every ISR member has on
// disk: the leader's fsynced end and each in-sync follower's fetch offset
// (followers fsync before fetching on). A member not heard from in this
// epoch holds it where it is.
func (r *replica) updateHWLocked() {
	hw := r.log.SyncedOffset()
	for _, id := range r.maximalISRLocked() {
		if id == r.self {
			continue
		}
		f := r.followers[id]
		if f == nil {
			return
		}
		hw = min(hw, f.fetchOffset)
	}
	if hw > r.hw {
		r.hw = hw
		r.wakeLocked()
	}
}

// highWatermark is the offset below which consumers may read. A leader
// alone in its ISR has no one to wait for: its log end is the high
// watermark (as in Kafka), so a single broker serves what it appended at
// once; acks=all still waits for the fsync (waitHW).
func (r *replica) highWatermark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.highWatermarkLocked()
}

func (r *replica) highWatermarkLocked() int64 {
	if isr := r.maximalISRLocked(); r.st.Leader == r.self && len(isr) == 1 && isr[0] == r.self {
		r.hw = max(r.hw, r.log.NextOffset())
	}
	return min(r.hw, r.log.NextOffset())
}

// maximalISRLocked is the ISR plus the followers proposed for it against
// the current state: every replica that may be in the ISR by the time an
// acknowledgement reaches the client.
func (r *replica) maximalISRLocked() []int32 {
	if len(r.joining) == 0 || !samePartitionEpoch(r.joiningAt, r.st) {
		return r.st.ISR
	}
	isr := slices.Clone(r.st.ISR)
	for _, id := range r.joining {
		if !slices.Contains(isr, id) {
			isr = append(isr, id)
		}
	}
	return isr
}

// samePartitionEpoch reports whether a and b are the same version of a
// partition's state: an ISR proposal made against a can still commit while
// the applied state is b.
func samePartitionEpoch(a, b cluster.PartitionState) bool {
	return a.LeaderEpoch == b.LeaderEpoch && a.PartitionEpoch == b.PartitionEpoch
}

// changed is closed at the next append, HW move or leadership change.
func (r *replica) changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notify
}

// appended wakes fetchers after a leader append.
func (r *replica) appended() {
	r.mu.Lock()
	r.wakeLocked()
	r.mu.Unlock()
}

// checkMinISR refuses acks=all while the ISR is below min.insync.replicas.
func (r *replica) checkMinISR() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.st.ISR) < r.minISR {
		return fmt.Errorf("%s/%d: isr %v, min.insync.replicas %d: %w", r.topic, r.part, r.st.ISR, r.minISR, errNotEnoughReplicas)
	}
	return nil
}

// waitHW returns once the high watermark reaches upTo (every ISR member has
// the batch on disk), or fails when leadership moves, the ISR shrinks below
// min.insync.replicas, or ctx ends. With patience > 0 this broker's fsync
// rides along with one something else leads (storage.Log.WaitSyncedLazily).
func (r *replica) waitHW(ctx context.Context, upTo int64, epoch int32, patience time.Duration) error {
	if err := r.log.WaitSyncedLazily(ctx, upTo, patience); err != nil {
		return err
	}
	for {
		r.mu.Lock()
		if r.st.Leader != r.self || r.st.LeaderEpoch != epoch {
			r.mu.Unlock()
			return fmt.Errorf("%s/%d: leadership moved while waiting for replicas: %w", r.topic, r.part, errNotLeader)
		}
		r.updateHWLocked()
		// Reaching the HW is not enough once the ISR has shrunk below
		// min.insync.replicas: fewer copies than promised hold the batch
		// (Kafka answers NOT_ENOUGH_REPLICAS_AFTER_APPEND too).
		if len(r.st.ISR) < r.minISR {
			r.mu.Unlock()
			return fmt.Errorf("%s/%d: isr %v: %w", r.topic, r.part, r.st.ISR, errNotEnoughAfterAppend)
		}
		if r.hw >= upTo {
			r.mu.Unlock()
			return nil
		}
		ch := r.notify
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s/%d: waiting for replicas: %w", r.topic, r.part, ctx.Err())
		}
	}
}

// followerFetched records a follower's fetch at offset (everything below it
// is on the follower's disk) and raises the HW. The fetch must be of the
// current leader epoch (epoch < 0: not stated): one checked against an
// earlier epoch of this leadership may come from a log the follower has
// yet to truncate, and must not count in this one.
func (r *replica) followerFetched(id, epoch int32, offset int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.Leader != r.self || !slices.Contains(r.st.Replicas, id) || (epoch >= 0 && epoch != r.st.LeaderEpoch) {
		return
	}
	leo := r.log.NextOffset()
	if offset > leo {
		return // a diverged follower; it will truncate
	}
	f := r.followers[id]
	if f == nil {
		f = &followerState{}
		r.followers[id] = f
	}
	now := time.Now()
	// Kafka's rule: caught up at this fetch if it reaches the log end, or
	// caught up as of the previous fetch if it reaches what the log end was
	// then (under steady writes a follower is never at the very end).
	switch {
	case offset >= leo:
		f.caughtUpAt = now
	case offset >= f.prevLEO && !f.lastFetch.IsZero():
		f.caughtUpAt = f.lastFetch
	}
	f.fetchOffset, f.lastFetch, f.prevLEO = offset, now, leo
	r.updateHWLocked()
}

// checkISR shrinks the ISR of followers that have not caught up within
// lagMax and expands it with followers that reached the HW in this epoch.
func (r *replica) checkISR(ctx context.Context, lagMax time.Duration) {
	r.mu.Lock()
	if r.st.Leader != r.self {
		r.mu.Unlock()
		return
	}
	now := time.Now()
	cur := r.st
	isr := slices.Clone(cur.ISR)
	for _, id := range cur.ISR {
		if id == r.self {
			continue
		}
		f := r.followers[id]
		since := r.leaderSince
		if f != nil && f.caughtUpAt.After(since) {
			since = f.caughtUpAt
		}
		if now.Sub(since) > lagMax {
			isr = slices.DeleteFunc(isr, func(x int32) bool { return x == id })
		}
	}
	var join []int32
	for _, id := range cur.Replicas {
		if !slices.Contains(isr, id) && r.canJoinLocked(id, now, lagMax) {
			join = append(join, id)
		}
	}
	// A proposal whose outcome is unknown (it timed out, or the Raft leader
	// moved) may still commit, so its followers still count for the HW.
	// Propose it again: it then commits or is refused, and ends.
	var retry []int32
	if samePartitionEpoch(r.joiningAt, cur) {
		for _, id := range r.joining {
			if !slices.Contains(isr, id) && !slices.Contains(join, id) {
				retry = append(retry, id)
			}
		}
	}
	r.mu.Unlock()
	if len(join) > 0 {
		// A follower that fetched just before it died must not be proposed
		// (the controller refuses dead brokers).
		md := r.m.s.cluster.Metadata()
		join = slices.DeleteFunc(join, func(id int32) bool {
			b, ok := md.Brokers[id]
			return !ok || !b.Alive
		})
	}
	// The HW may have moved while the lock was released: check the
	// followers again, and count them for the HW from here on, before the
	// proposal leaves.
	r.mu.Lock()
	if r.st.Leader != r.self || !samePartitionEpoch(r.st, cur) {
		r.mu.Unlock()
		return // the state moved on; the next pass starts from the new one
	}
	join = slices.DeleteFunc(join, func(id int32) bool { return !r.canJoinLocked(id, time.Now(), lagMax) })
	join = append(join, retry...)
	isr = append(isr, join...)
	if slices.Equal(isr, cur.ISR) {
		r.mu.Unlock()
		return
	}
	if len(join) > 0 {
		// An earlier proposal against the same state may still commit:
		// its joiners keep counting until the state moves on.
		if samePartitionEpoch(r.joiningAt, cur) {
			for _, id := range r.joining {
				if !slices.Contains(join, id) {
					join = append(join, id)
				}
			}
		}
		r.joining, r.joiningAt = join, cur
	}
	r.mu.Unlock()
	if hook := r.m.beforeISRProposal.Load(); hook != nil && len(join) > 0 {
		(*hook)(r, join)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	next, err := r.m.s.cluster.ProposeISR(pctx, cur, isr)
	if err != nil {
		if errors.Is(err, cluster.ErrInvalidISR) || errors.Is(err, cluster.ErrUnknownTopic) {
			// Refused against the very state it was made for: nothing of
			// it committed, and the followers stop counting.
			r.mu.Lock()
			if samePartitionEpoch(r.joiningAt, cur) {
				r.joining = nil
			}
			r.mu.Unlock()
		}
		level := slog.LevelWarn
		if errors.Is(err, cluster.ErrClosed) || r.m.s.ctx.Err() != nil {
			level = slog.LevelDebug // this broker is stopping: expected, and every 250 ms
		}
		r.m.s.logger.Log(context.Background(), level, "isr change refused", "topic", r.topic, "partition", r.part, "from", cur.ISR, "to", isr, "err", err)
		return
	}
	r.m.s.logger.Info("isr changed", "topic", r.topic, "partition", r.part, "from", cur.ISR, "to", next.ISR)
	kind := "expand"
	if len(next.ISR) < len(cur.ISR) {
		kind = "shrink"
	}
	r.m.isrChanges.WithLabelValues(kind).Inc()
	r.update(next, r.m.s.cluster.Metadata())
}

// canJoinLocked reports whether follower id may join the ISR: it has
// everything below the HW and this epoch's start on disk, and fetched
// within lagMax.
func (r *replica) canJoinLocked(id int32, now time.Time, lagMax time.Duration) bool {
	f := r.followers[id]
	return f != nil && f.fetchOffset >= r.hw && f.fetchOffset >= r.epochStart && now.Sub(f.lastFetch) < lagMax
}

// startFetcher follows leader at epoch until stopFetcher.
func (r *replica) startFetcher(leader int32, addr string, epoch int32) {
	ctx, cancel := context.WithCancel(r.m.s.ctx)
	done := make(chan struct{})
	r.mu.Lock()
	r.fetchCancel, r.fetchDone, r.fetchAddr = cancel, done, addr
	r.mu.Unlock()
	f := &fetcher{r: r, leader: leader, addr: addr, epoch: epoch}
	r.m.wg.Add(1)
	go func() {
		defer r.m.wg.Done()
		defer close(done)
		f.run(ctx)
	}()
}

// ensureFetcher (re)starts the fetcher of a followed partition whose
// leader's address changed (restarted elsewhere) or was not known when the
// epoch began.
func (r *replica) ensureFetcher(md *cluster.Snapshot) {
	r.mu.Lock()
	st, addr := r.st, r.fetchAddr
	r.mu.Unlock()
	if st.Leader == r.self || st.Leader == cluster.NoLeader {
		return
	}
	b, ok := md.Brokers[st.Leader]
	if !ok || b.KafkaAddr == addr {
		return
	}
	r.stopFetcher()
	r.startFetcher(st.Leader, b.KafkaAddr, st.LeaderEpoch)
}

// stopFetcher stops the fetcher, if any, and waits for it.
func (r *replica) stopFetcher() {
	r.mu.Lock()
	cancel, done := r.fetchCancel, r.fetchDone
	r.fetchCancel, r.fetchDone, r.fetchAddr = nil, nil, ""
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// followerHW records the leader's HW as seen by a follower.
func (r *replica) followerHW(hw int64) {
	r.mu.Lock()
	if hw > r.hw {
		r.hw = hw
	}
	r.mu.Unlock()
}

// topicIDKey is where a broker records, in its metadata store, which
// incarnation (cluster.Topic.ID) of a topic its local logs hold.
func topicIDKey(name string) string { return "cluster/topic-id/" + name }

// recordIncarnation notes that the local logs of t belong to its current id.
func (m *replicaManager) recordIncarnation(t *cluster.Topic) {
	if t.ID == "" {
		return
	}
	if err := m.s.store.PutValue(topicIDKey(t.Name), []byte(t.ID)); err != nil {
		m.s.logger.Error("record topic id", "topic", t.Name, "err", err)
	}
}

// dropStaleIncarnations deletes local topics whose recorded id is not the
// metadata's: deleted while this broker was down (and perhaps created
// again under the same name). A local topic without a recorded id (created
// before ids) adopts the metadata's.
func (m *replicaManager) dropStaleIncarnations(md *cluster.Snapshot) {
	for _, info := range m.s.topics.List() {
		local, err := m.s.store.Value(topicIDKey(info.Name))
		if err != nil && !errors.Is(err, meta.ErrNotFound) {
			m.s.logger.Error("read topic id", "topic", info.Name, "err", err)
			continue
		}
		t, inMetadata := md.Topics[info.Name]
		current := ""
		if inMetadata {
			current = t.ID
		}
		switch {
		case len(local) == 0 && inMetadata:
			m.recordIncarnation(t)
			continue
		case len(local) == 0, inMetadata && string(local) == t.ID, inMetadata && t.ID == "":
			continue
		}
		for tp, r := range m.replicas {
			if tp.topic == info.Name {
				r.stopFetcher()
				delete(m.replicas, tp)
			}
		}
		if err := m.s.topics.Delete(info.Name); err != nil {
			m.s.logger.Error("delete data of a deleted topic", "topic", info.Name, "err", err)
			continue
		}
		_ = m.s.store.DeleteValue(topicIDKey(info.Name))
		m.s.logger.Warn("deleted local data of a topic the cluster deleted or created anew",
			"topic", info.Name, "local_id", string(local), "current_id", current)
	}
}
