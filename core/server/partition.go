package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/storage"
)

// Partition is the seam between protocol handlers and replication:
// everything a handler asks of one partition goes through here, and it is
// the same whether the broker is alone (a cluster of one, ISR = {self}) or
// one of many. Handlers get a Partition only for partitions this broker
// leads, as kfake's do: `if leader != me { NOT_LEADER }` is s.partition.
type Partition struct {
	Topic string
	ID    int32
	log   *storage.Log
	r     *replica
	// epoch is the leader epoch this broker led the partition at when
	// the handler looked it up: appends are stamped with it and refused
	// once the partition has moved on, and acks wait within it.
	epoch int32
}

// errNotLeader answers a request for a partition another broker leads.
var errNotLeader = errors.New("core: not the partition leader")

// partition looks up a partition this broker leads. It never creates
// anything: auto-creation is its own step (ensureTopic).
func (s *Server) partition(topic string, id int32) (*Partition, error) {
	r, err := s.replicas.lookup(topic, id)
	if err != nil {
		return nil, fmt.Errorf("partition %s/%d: %w", topic, id, err)
	}
	epoch, leading := r.leading()
	if !leading {
		return nil, fmt.Errorf("partition %s/%d: %w", topic, id, errNotLeader)
	}
	return &Partition{Topic: topic, ID: id, log: r.log, r: r, epoch: epoch}, nil
}

// partitionAtEpoch is partition for a request that names the leader epoch
// the client knows (KIP-320; -1 for none), answering with a Kafka code:
// UNKNOWN_LEADER_EPOCH when the client is ahead of this leader (its
// metadata is newer), FENCED_LEADER_EPOCH when it is behind.
func (s *Server) partitionAtEpoch(topic string, id, currentEpoch int32) (*Partition, int16) {
	p, err := s.partition(topic, id)
	if err != nil {
		return nil, errorCode(err)
	}
	switch epoch := p.LeaderEpoch(); {
	case currentEpoch > epoch:
		return nil, kerr.UnknownLeaderEpoch.Code
	case currentEpoch >= 0 && currentEpoch < epoch:
		return nil, kerr.FencedLeaderEpoch.Code
	}
	return p, 0
}

// proposalTimeout bounds a metadata change made on a client's behalf.
const proposalTimeout = 10 * time.Second

// ensureTopic is auto-creation, the one explicit step Metadata and Produce
// take for a topic they do not know: when auto-creation is on, the topic is
// created with the default partition count and replication factor. Losing
// a race to another connection or broker is not an error.
func (s *Server) ensureTopic(topic string) error {
	if s.cluster.HasTopic(topic) || !s.cfg.autoCreate() || !s.replicas.ready.Load() {
		return nil
	}
	if err := validTopicName(topic); err != nil {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	ctx, cancel := context.WithTimeout(s.ctx, proposalTimeout)
	defer cancel()
	err := s.cluster.CreateTopic(ctx, topic, s.cfg.DefaultPartitions, -1, nil)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	if err != nil {
		// Created elsewhere and not applied here yet: wait a little for
		// this broker's copy rather than call an existing topic unknown.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for {
			w := s.cluster.Watch()
			if s.cluster.HasTopic(topic) {
				break
			}
			select {
			case <-w:
			case <-wctx.Done():
				return fmt.Errorf("auto-create topic %q: exists but not yet known here: %w", topic, storage.ErrUnknownTopic)
			}
		}
	} else {
		s.logger.Info("auto-created topic", "topic", topic, "partitions", s.cfg.DefaultPartitions)
	}
	// The creating proposal returns once this broker applied it; make the
	// local logs now rather than wait for the replica manager's next pass.
	s.replicas.reconcile()
	return nil
}

// Append writes producer batches without waiting for the disk; acks=all
// callers then call WaitDurable, so that the next batches can be appended
// while the fsync runs.
//
// It appends only while this broker still leads at the epoch it was looked
// up at: a request that found it leader and then waited (for the replica's
// lock, say) while leadership moved must not write into what is now a
// follower's log, under a leader epoch that is another broker's.
func (p *Partition) Append(ctx context.Context, batches []byte, idempotent bool) (storage.AppendResult, error) {
	res, err := p.appendAtEpoch(ctx, batches, idempotent)
	if err != nil {
		return res, fmt.Errorf("append to %s/%d: %w", p.Topic, p.ID, err)
	}
	p.r.appended()
	// A topic that syncs every write (flush.ms=0) waits for its fsync
	// here, outside leadMu: a slow disk must not hold up a leader change.
	if !res.Duplicate && p.log.Config().Durability.Mode == storage.SyncAlways {
		if err := p.log.WaitSynced(ctx, res.LastOffset+1); err != nil {
			return res, fmt.Errorf("sync %s/%d: %w", p.Topic, p.ID, err)
		}
	}
	return res, nil
}

// appendAtEpoch writes the batches if this broker still leads at p.epoch,
// under leadMu so that the epoch cannot change in between.
func (p *Partition) appendAtEpoch(ctx context.Context, batches []byte, idempotent bool) (storage.AppendResult, error) {
	p.r.leadMu.RLock()
	defer p.r.leadMu.RUnlock()
	if epoch, leading := p.r.leading(); !leading || epoch != p.epoch {
		return storage.AppendResult{}, fmt.Errorf("at leader epoch %d: %w", p.epoch, errNotLeader)
	}
	return p.log.Append(ctx, batches, storage.AppendOptions{
		LeaderEpoch: p.epoch,
		Idempotent:  idempotent,
		Sequences:   forwarded.Sequences, // a bridge's producer: sequence = edge offset
		DeferSync:   true,
	})
}

// EndOffset is the log end offset (the next offset to be assigned).
func (p *Partition) EndOffset() int64 { return p.log.NextOffset() }

// WaitDurable returns once every in-sync replica has every offset below upTo
// on disk (concurrent waiters share the fsyncs): what acks=all means. With
// ISR = {self} that is this broker's own fsync.
func (p *Partition) WaitDurable(ctx context.Context, upTo int64) error {
	return p.waitDurable(ctx, upTo, 0)
}

// WaitDurableLazily is WaitDurable for a write nobody is waiting on (a
// transaction marker): this broker's part rides along with the next fsync
// something else leads, and leads one itself only after patience.
func (p *Partition) WaitDurableLazily(ctx context.Context, upTo int64, patience time.Duration) error {
	return p.waitDurable(ctx, upTo, patience)
}

func (p *Partition) waitDurable(ctx context.Context, upTo int64, patience time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, p.r.m.s.cfg.Replication.AckTimeout+patience)
	defer cancel()
	if err := p.r.waitHW(ctx, upTo, p.epoch, patience); err != nil {
		return fmt.Errorf("replicate %s/%d: %w", p.Topic, p.ID, err)
	}
	return nil
}

// HighWatermark is the offset below which consumers may read.
func (p *Partition) HighWatermark() int64 { return p.r.highWatermark() }

// CheckMinISR refuses acks=all while the ISR is below min.insync.replicas.
func (p *Partition) CheckMinISR() error { return p.r.checkMinISR() }

// ReadReplica serves a follower: batches up to the log end, not the HW,
// read into alloc's buffers (see Read). It records the follower's fetch
// offset first, which may raise the HW.
func (p *Partition) ReadReplica(alloc func(int) []byte, follower, epoch int32, from int64, maxBytes int) ([]byte, int64, error) {
	p.r.followerFetched(follower, epoch, from)
	hw := p.HighWatermark()
	b, err := p.log.ReadInto(alloc, from, maxBytes, p.log.NextOffset())
	if err != nil {
		return nil, hw, fmt.Errorf("replica read %s/%d at %d: %w", p.Topic, p.ID, from, err)
	}
	return b, hw, nil
}

// LogStartOffset is the first offset still held.
func (p *Partition) LogStartOffset() int64 { return p.log.StartOffset() }

// LeaderEpoch is the partition's current leader epoch.
func (p *Partition) LeaderEpoch() int32 { return p.epoch }

// Read returns stored batch bytes from offset, at most maxBytes (but at
// least one batch), never past the high watermark, which it also returns.
// The bytes go into a buffer from alloc (storage.Log.ReadInto; nil: make).
func (p *Partition) Read(alloc func(int) []byte, from int64, maxBytes int) ([]byte, int64, error) {
	hw := p.HighWatermark()
	b, err := p.log.ReadInto(alloc, from, maxBytes, hw)
	if err != nil {
		return nil, hw, fmt.Errorf("read %s/%d at %d: %w", p.Topic, p.ID, from, err)
	}
	return b, hw, nil
}

// Changed is closed at the next append or high-watermark move, waking long
// polls.
func (p *Partition) Changed() <-chan struct{} { return p.r.changed() }

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= epoch
// this log holds and where it ends.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	ep, end := p.log.EndOffsetForEpoch(epoch)
	if ep < 0 && epoch == p.LeaderEpoch() {
		// Nothing written yet under any epoch: the current one ends at the
		// log end, as a leader's epoch cache would say.
		return epoch, p.log.NextOffset()
	}
	return ep, end
}

// OffsetForTime is the first offset whose batch has a timestamp >= ts.
func (p *Partition) OffsetForTime(ts int64) (int64, bool, error) {
	off, ok, err := p.log.OffsetForTime(ts)
	if err != nil {
		return 0, false, fmt.Errorf("offset for time in %s/%d: %w", p.Topic, p.ID, err)
	}
	return off, ok, nil
}

// DeleteRecordsBefore moves the log start offset to offset (-1: the high
// watermark) and returns the new start; beyond the high watermark is
// ErrOffsetOutOfRange. Followers follow through their fetches.
func (p *Partition) DeleteRecordsBefore(offset int64) (int64, error) {
	hw := p.HighWatermark()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return p.LogStartOffset(), fmt.Errorf("delete records of %s/%d before %d (high watermark %d): %w",
			p.Topic, p.ID, offset, hw, storage.ErrOffsetOutOfRange)
	}
	start, err := p.log.DeleteRecordsBefore(offset)
	if err != nil {
		return start, fmt.Errorf("delete records of %s/%d: %w", p.Topic, p.ID, err)
	}
	return start, nil
}
