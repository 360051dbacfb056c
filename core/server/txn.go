package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Transactions (KIP-98) on the broker side. The coordinator (core/txns)
// decides; this file gives it what it needs from the broker:
//
//   - a Store: every state change of a transactional id is appended to the
//     offsets-topic partition that coordinates the id and acknowledged by
//     its ISR (txn_cluster.go), exactly like committed offsets. That log is
//     the only copy that counts: the coordinator keeps the state in memory,
//     and a broker taking the partition over replays the log to rebuild
//     it (txnStateKey names a state record there);
//   - Markers: a commit or abort control batch appended to every partition
//     of the transaction (through the partition leader), and the offsets a
//     TxnOffsetCommit staged for each group made visible or dropped.
//
// Staged offsets (TxnOffsetCommit) wait in the metadata store under
// txnOffsetsKey until the group's marker.

const (
	txnStatePrefix   = "txn/state/"
	txnOffsetsPrefix = "txn/offsets/"
)

func txnStateKey(id string) string { return txnStatePrefix + id }

func txnOffsetsKey(group string, pid int64) string {
	return txnOffsetsPrefix + group + "/" + strconv.FormatInt(pid, 10)
}

// txnBroker implements txns.Store and txns.Markers for one server.
type txnBroker struct {
	s *Server
	// mu serializes staging and settling of transactional offsets.
	mu sync.Mutex
	// conns carries markers to partitions other brokers lead.
	conns markerConns
	// loaded is the set of offsets partitions whose transactions the
	// coordinator holds (loadTxnPartition).
	loadedMu sync.Mutex
	loaded   map[int32]bool
}

// setLoaded records that part's transactions are (or are no longer) in
// the coordinator.
func (b *txnBroker) setLoaded(part int32, on bool) {
	b.loadedMu.Lock()
	defer b.loadedMu.Unlock()
	if b.loaded == nil {
		b.loaded = map[int32]bool{}
	}
	if on {
		b.loaded[part] = true
	} else {
		delete(b.loaded, part)
	}
}

func (b *txnBroker) isLoaded(part int32) bool {
	b.loadedMu.Lock()
	defer b.loadedMu.Unlock()
	return b.loaded[part]
}

// alone reports whether this broker is a cluster of one (no Cluster
// config): then it holds every transaction's state and every partition
// for good, and a marker that only its own fsync makes durable can be
// left to that fsync (see WriteMarkersDeferred).
func (b *txnBroker) alone() bool {
	_, local := b.s.cluster.(*cluster.Local)
	return local
}

// startTxns starts the transaction coordinator. A broker loads the
// transactions of an offsets partition when it becomes its leader (a
// single broker too: it leads them all once it has replayed them).
func (s *Server) startTxns() error {
	b := &txnBroker{s: s}
	s.txnb = b
	s.txns = txns.NewCoordinator(txns.Config{
		Store:         b,
		Markers:       b,
		NewProducerID: s.newProducerID,
		MaxTimeout:    s.cfg.Transactions.MaxTimeout,
		IDExpiration:  s.cfg.Transactions.IDExpiration,
		MarkerTimeout: s.cfg.Replication.AckTimeout,
	}, s.logger)
	return nil
}

// newProducerID allocates a producer id unique in the cluster.
func (s *Server) newProducerID() (int64, error) {
	id, err := s.store.NextProducerID()
	if err != nil {
		return -1, fmt.Errorf("allocate producer id: %w", err)
	}
	return clusterProducerID(id, s.cfg.NodeID), nil
}

// SaveTxn implements txns.Store: the state log is the durable copy (no
// metadata store write, which would cost an fsync of its own per change).
func (b *txnBroker) SaveTxn(ctx context.Context, t txns.Txn, durable bool) error {
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode transaction %q: %w", t.ID, err)
	}
	return b.s.replicateTxnState(ctx, t.ID, v, durable)
}

// DeleteTxn implements txns.Store: a tombstone for an expired id.
func (b *txnBroker) DeleteTxn(ctx context.Context, id string) error {
	return b.s.replicateTxnState(ctx, id, nil, false)
}

// WriteMarkers implements txns.Markers: the partitions this broker leads
// side by side, the rest through their leaders (txn_cluster.go), and the
// groups' staged offsets through their coordinators; every marker durable
// before it returns.
func (b *txnBroker) WriteMarkers(ctx context.Context, pid int64, epoch int16, commit bool, parts []txns.TopicPartition, groups []string) error {
	_, _, err := b.writeMarkers(ctx, pid, epoch, commit, parts, groups, false)
	return err
}

// WriteMarkersDeferred implements txns.DeferredMarkers: as WriteMarkers,
// but the markers of the partitions this broker leads are only appended;
// wait makes them durable (on every in-sync replica). Remote partitions
// and groups are durable before it returns.
func (b *txnBroker) WriteMarkersDeferred(ctx context.Context, pid int64, epoch int16, commit bool, parts []txns.TopicPartition, groups []string) ([]txns.Mark, func(context.Context) error, error) {
	return b.writeMarkers(ctx, pid, epoch, commit, parts, groups, true)
}

// markerSyncPatience is how long a deferred marker waits for an fsync that
// other writes lead before it leads one itself.
const markerSyncPatience = 20 * time.Millisecond

func (b *txnBroker) writeMarkers(ctx context.Context, pid int64, epoch int16, commit bool, parts []txns.TopicPartition, groups []string, deferred bool) ([]txns.Mark, func(context.Context) error, error) {
	s := b.s
	var remote []markerTarget
	var local []*Partition
	for _, tp := range parts {
		p, err := s.partition(tp.Topic, tp.Partition)
		switch {
		case err == nil:
			local = append(local, p)
		case s.cluster.Metadata().Topics[tp.Topic] != nil:
			remote = append(remote, markerTarget{tp: tp}) // led elsewhere
		case errorCode(err) == kerr.UnknownTopicOrPartition.Code:
			// Deleted since it joined the transaction: nothing to mark.
		default:
			return nil, nil, fmt.Errorf("marker for %s/%d: %w", tp.Topic, tp.Partition, err)
		}
	}
	deferred = deferred && b.alone()
	marks := make([]txns.Mark, len(local))
	errs := make([]error, len(local))
	for i, p := range local {
		off, err := s.appendMarker(ctx, p, pid, epoch, commit)
		marks[i], errs[i] = txns.Mark{Topic: p.Topic, Partition: p.ID, Offset: off}, err
	}
	wait := func(ctx context.Context) error {
		werrs := make([]error, len(local))
		var wg sync.WaitGroup
		for i, p := range local {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if deferred {
					// Nobody waits on these: ride along with the data's fsyncs.
					werrs[i] = p.WaitDurableLazily(ctx, marks[i].Offset+1, markerSyncPatience)
				} else {
					werrs[i] = p.WaitDurable(ctx, marks[i].Offset+1)
				}
			}()
		}
		wg.Wait()
		return errors.Join(werrs...)
	}
	if err := errors.Join(errs...); err == nil && !deferred {
		errs = append(errs, wait(ctx))
	}
	for _, g := range groups {
		if !s.coordinates(g) {
			remote = append(remote, markerTarget{group: g})
			continue
		}
		errs = append(errs, s.settleLocal(ctx, g, pid, commit))
	}
	if len(remote) > 0 {
		errs = append(errs, s.writeRemoteMarkers(ctx, pid, epoch, commit, remote))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if !deferred || len(local) == 0 {
		return nil, nil, nil
	}
	return marks, wait, nil
}

// RewriteMarkers implements txns.DeferredMarkers: for each mark, if the
// partition still holds the producer's transaction open from before the
// mark's offset, the marker there was lost, and it is written again
// (durably); otherwise the marker survived, and an open transaction of
// the producer is a later one, which must not be ended. Partitions led
// elsewhere are asked with DescribeProducers and marked with
// WriteTxnMarkers.
func (b *txnBroker) RewriteMarkers(ctx context.Context, e txns.Ended) error {
	s := b.s
	var errs []error
	for _, m := range e.Marks {
		p, err := s.partition(m.Topic, m.Partition)
		switch {
		case err == nil:
			if first, open := p.log.OpenTxns()[e.ProducerID]; !open || first >= m.Offset {
				continue
			}
			s.logger.Info("rewriting a transaction marker lost in a crash", "topic", m.Topic, "partition", m.Partition, "pid", e.ProducerID, "offset", m.Offset)
			errs = append(errs, s.markDurably(ctx, p, e.ProducerID, e.Epoch, e.Commit))
		case s.cluster.Metadata().Topics[m.Topic] != nil:
			errs = append(errs, s.rewriteRemoteMarker(ctx, e, m))
		case errorCode(err) == kerr.UnknownTopicOrPartition.Code:
			// Deleted since: nothing to mark.
		default:
			errs = append(errs, fmt.Errorf("marker for %s/%d: %w", m.Topic, m.Partition, err))
		}
	}
	return errors.Join(errs...)
}

// markDurably appends one control batch to a partition this broker leads
// and waits until it is durable (on every in-sync replica).
func (s *Server) markDurably(ctx context.Context, p *Partition, pid int64, epoch int16, commit bool) error {
	off, err := s.appendMarker(ctx, p, pid, epoch, commit)
	if err != nil {
		return err
	}
	return p.WaitDurable(ctx, off+1)
}

// appendMarker appends one control batch to a partition this broker leads
// and returns its offset; it is durable once p.WaitDurable passes it.
func (s *Server) appendMarker(ctx context.Context, p *Partition, pid int64, epoch int16, commit bool) (int64, error) {
	// Refused before appending, as a produce is: every retry would
	// otherwise add a marker that cannot be acknowledged.
	if err := p.CheckMinISR(); err != nil {
		return -1, fmt.Errorf("marker: %w", err)
	}
	batch, err := recordbatch.BuildMarker(pid, epoch, commit, 0, time.Now().UnixMilli())
	if err != nil {
		return -1, fmt.Errorf("build marker: %w", err)
	}
	res, err := p.Append(ctx, batch, false)
	if err != nil {
		return -1, fmt.Errorf("marker: %w", err)
	}
	return res.BaseOffset, nil
}

// stageTxnOffsets keeps a TxnOffsetCommit's offsets until the transaction
// ends; a later commit for the same partition in the same transaction wins.
func (s *Server) stageTxnOffsets(ctx context.Context, group string, pid int64, offs map[meta.TopicPartition]meta.OffsetCommit) error {
	s.txnb.mu.Lock()
	defer s.txnb.mu.Unlock()
	staged, err := s.stagedOffsets(group, pid)
	if err != nil {
		return err
	}
	for tp, oc := range offs {
		staged[tp] = oc
	}
	v, err := json.Marshal(encodeStaged(staged))
	if err != nil {
		return fmt.Errorf("encode staged offsets: %w", err)
	}
	if err := s.replicateStaged(ctx, group, pid, v); err != nil {
		return err
	}
	return s.store.PutValue(txnOffsetsKey(group, pid), v)
}

type stagedOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	meta.OffsetCommit
}

func encodeStaged(m map[meta.TopicPartition]meta.OffsetCommit) []stagedOffset {
	out := make([]stagedOffset, 0, len(m))
	for tp, oc := range m {
		out = append(out, stagedOffset{Topic: tp.Topic, Partition: tp.Partition, OffsetCommit: oc})
	}
	return out
}

func (s *Server) stagedOffsets(group string, pid int64) (map[meta.TopicPartition]meta.OffsetCommit, error) {
	out := map[meta.TopicPartition]meta.OffsetCommit{}
	v, err := s.store.Value(txnOffsetsKey(group, pid))
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, fmt.Errorf("read staged offsets of %q: %w", group, err)
	}
	var list []stagedOffset
	if len(v) > 0 {
		if err := json.Unmarshal(v, &list); err != nil {
			return nil, fmt.Errorf("decode staged offsets of %q: %w", group, err)
		}
	}
	for _, so := range list {
		out[meta.TopicPartition{Topic: so.Topic, Partition: so.Partition}] = so.OffsetCommit
	}
	return out, nil
}

// stagedPartitions is every partition of group that an ongoing transaction
// has staged offsets for.
func (s *Server) stagedPartitions(group string) map[meta.TopicPartition]bool {
	_, vals, err := s.store.Values(txnOffsetsPrefix + group + "/")
	if err != nil || len(vals) == 0 {
		return nil
	}
	out := map[meta.TopicPartition]bool{}
	for _, v := range vals {
		var list []stagedOffset
		_ = json.Unmarshal(v, &list)
		for _, so := range list {
			out[meta.TopicPartition{Topic: so.Topic, Partition: so.Partition}] = true
		}
	}
	return out
}

// markUnstable answers OffsetFetch with require_stable (KIP-447) with
// UNSTABLE_OFFSET_COMMIT for partitions whose offsets a transaction has
// staged and not yet settled; the client asks again.
func (s *Server) markUnstable(req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse) {
	if !req.RequireStable {
		return
	}
	mark := func(group string, topics []kmsg.OffsetFetchResponseTopic) {
		staged := s.stagedPartitions(group)
		for i := range topics {
			for j := range topics[i].Partitions {
				p := &topics[i].Partitions[j]
				if staged[meta.TopicPartition{Topic: topics[i].Topic, Partition: p.Partition}] {
					p.ErrorCode = kerr.UnstableOffsetCommit.Code
				}
			}
		}
	}
	mark(req.Group, resp.Topics)
	for gi := range resp.Groups {
		g := &resp.Groups[gi]
		staged := s.stagedPartitions(g.Group)
		for i := range g.Topics {
			for j := range g.Topics[i].Partitions {
				p := &g.Topics[i].Partitions[j]
				if staged[meta.TopicPartition{Topic: g.Topics[i].Topic, Partition: p.Partition}] {
					p.ErrorCode = kerr.UnstableOffsetCommit.Code
				}
			}
		}
	}
}

// settleLocal commits (or drops) what a transaction staged for a group
// this broker coordinates.
func (s *Server) settleLocal(ctx context.Context, group string, pid int64, commit bool) error {
	s.txnb.mu.Lock()
	defer s.txnb.mu.Unlock()
	staged, err := s.stagedOffsets(group, pid)
	if err != nil {
		return err
	}
	if commit && len(staged) > 0 {
		now := time.Now().UnixMilli()
		for tp, oc := range staged {
			oc.CommitMs = now
			staged[tp] = oc
		}
		if err := s.store.CommitOffsets(group, staged); err != nil {
			return fmt.Errorf("commit transactional offsets of %q: %w", group, err)
		}
		if err := s.replicateOffsets(ctx, group, staged); err != nil {
			return err
		}
	}
	if len(staged) > 0 {
		if err := s.replicateStaged(ctx, group, pid, nil); err != nil {
			return err
		}
	}
	if err := s.store.DeleteValue(txnOffsetsKey(group, pid)); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("drop staged offsets of %q: %w", group, err)
	}
	return nil
}

// txnErrorCode maps an error code the coordinator has no say in for old
// clients: PRODUCER_FENCED (KIP-588) is new in Kafka 2.7, older request
// versions get INVALID_PRODUCER_EPOCH, which they treat the same way.
func txnErrorCode(code int16, version, fencedSince int16) int16 {
	if code == kerr.ProducerFenced.Code && version < fencedSince {
		return kerr.InvalidProducerEpoch.Code
	}
	return code
}

// coordinateTxn runs op, a producer's request on its transactional id, when
// this broker coordinates the id, and returns the error code to answer
// (counted on c), mapped by txnErrorCode for a client at version.
func (s *Server) coordinateTxn(c *call, id string, version, fencedSince int16, op func() int16) int16 {
	code := s.txnOwner(id)
	if code == 0 {
		code = txnErrorCode(op(), version, fencedSince)
	}
	c.fail(code)
	return code
}

// txnOwner returns NOT_COORDINATOR when another broker coordinates
// transactional id (in a cluster: the leader of the id's offsets partition).
func (s *Server) txnOwner(id string) int16 {
	if id == "" {
		return kerr.InvalidRequest.Code
	}
	if !s.coordinates(id) {
		return kerr.NotCoordinator.Code
	}
	return 0
}

// checkTxnProduce refuses control batches from clients (only coordinators
// write markers), transactional batches without a transactional id, and —
// where this broker coordinates the id — batches for a partition that is
// not in the producer's ongoing transaction: its marker would never be
// written and the partition's LSO would hang.
func (s *Server) checkTxnProduce(id *string, h recordbatch.Header, topic string, part int32) (int16, string) {
	switch {
	case h.IsControl():
		return kerr.InvalidRecord.Code, "control batches are written by the transaction coordinator only"
	case !h.IsTransactional():
		return 0, ""
	case id == nil:
		return kerr.InvalidRequest.Code, "transactional batch without a transactional id"
	}
	const loading = "transaction state is still loading"
	if s.txnb.alone() {
		// Every id is coordinated here. Until its state is loaded, and
		// any marker a crash may have lost is written again (deferred
		// markers: WriteMarkersDeferred), a write could land where that
		// marker belongs; the producer retries.
		op, ok := s.offsetsPartitionOf(*id)
		if !ok || !s.ownsOffsetsPartition(op) || !s.txnb.isLoaded(op) {
			return kerr.CoordinatorLoadInProgress.Code, loading
		}
	}
	t, ok, rewriting := s.txns.Lookup(*id)
	switch {
	case rewriting:
		return kerr.CoordinatorLoadInProgress.Code, loading
	case !ok || s.txnOwner(*id) != 0:
		return 0, "" // coordinated elsewhere
	}
	switch {
	case t.ProducerID != h.ProducerID:
		return kerr.InvalidProducerIDMapping.Code, ""
	case h.ProducerEpoch < t.Epoch:
		return kerr.InvalidProducerEpoch.Code, ""
	case t.State != txns.Ongoing || !slices.Contains(t.Partitions, txns.TopicPartition{Topic: topic, Partition: part}):
		return kerr.InvalidTxnState.Code, "partition not added to the transaction"
	}
	return 0, ""
}
