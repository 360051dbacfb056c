package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/tributary-io/tributary/storage"
)

// Partition is the seam between protocol handlers and storage: everything a
// handler asks of one partition goes through here. On a single node this
// broker leads every partition at epoch 0 and the high watermark is the log
// end; replication will change these methods, not the handlers.
type Partition struct {
	Topic string
	ID    int32
	log   *storage.Log
	// r is the partition's replica in cluster mode (nil on a single node):
	// epoch, high watermark and acks=all then come from replication.
	r *replica
}

// leaderEpoch is the epoch stamped into appended batches and reported in
// Metadata and OffsetForLeaderEpoch.
const leaderEpoch int32 = 0

// errNotLeader is what a follower would answer; unused on one node but kept
// in the error mapping so handlers already handle it.
var errNotLeader = errors.New("core: not the partition leader")

// partition looks up a partition of a topic, creating the topic first when
// autoCreate is set and auto-creation is configured.
func (s *Server) partition(topic string, id int32, autoCreate bool) (*Partition, error) {
	if s.node != nil {
		return s.clusterPartition(topic, id, autoCreate)
	}
	l, err := s.topics.Partition(topic, id)
	if errors.Is(err, storage.ErrUnknownTopic) && autoCreate && s.cfg.autoCreate() {
		if err := s.autoCreateTopic(topic); err != nil {
			return nil, err
		}
		l, err = s.topics.Partition(topic, id)
	}
	if err != nil {
		return nil, fmt.Errorf("partition %s/%d: %w", topic, id, err)
	}
	return &Partition{Topic: topic, ID: id, log: l}, nil
}

// autoCreateTopic creates topic with the default partition count; a
// concurrent creation by another connection is not an error.
func (s *Server) autoCreateTopic(topic string) error {
	if err := validTopicName(topic); err != nil {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	err := s.topics.Create(topic, s.cfg.DefaultPartitions, storage.LogConfig{})
	if err != nil && !errors.Is(err, storage.ErrTopicExists) {
		return fmt.Errorf("auto-create topic %q: %w", topic, err)
	}
	if err == nil {
		s.logger.Info("auto-created topic", "topic", topic, "partitions", s.cfg.DefaultPartitions)
	}
	return nil
}

// Append writes producer batches without waiting for the disk; acks=all
// callers then call WaitDurable, so that the next batches can be appended
// while the fsync runs.
func (p *Partition) Append(ctx context.Context, batches []byte, idempotent bool) (storage.AppendResult, error) {
	res, err := p.log.Append(ctx, batches, storage.AppendOptions{
		LeaderEpoch: p.LeaderEpoch(),
		Idempotent:  idempotent,
	})
	if err != nil {
		return res, fmt.Errorf("append to %s/%d: %w", p.Topic, p.ID, err)
	}
	if p.r != nil {
		p.r.appended()
	}
	return res, nil
}

// EndOffset is the log end offset (the next offset to be assigned).
func (p *Partition) EndOffset() int64 { return p.log.NextOffset() }

// WaitDurable returns once every offset below upTo is fsynced (concurrent
// waiters share the fsync). On one node this is what acks=all means: every
// in-sync replica, i.e. this one, has the batch on disk. Replication will
// wait for the high watermark here instead.
func (p *Partition) WaitDurable(ctx context.Context, upTo int64) error {
	if p.r != nil {
		ctx, cancel := context.WithTimeout(ctx, p.r.m.s.cfg.Replication.AckTimeout)
		defer cancel()
		if err := p.r.waitHW(ctx, upTo); err != nil {
			return fmt.Errorf("replicate %s/%d: %w", p.Topic, p.ID, err)
		}
		return nil
	}
	if err := p.log.WaitSynced(ctx, upTo); err != nil {
		return fmt.Errorf("sync %s/%d: %w", p.Topic, p.ID, err)
	}
	return nil
}

// HighWatermark is the offset below which consumers may read.
func (p *Partition) HighWatermark() int64 {
	if p.r != nil {
		return p.r.highWatermark()
	}
	return p.log.NextOffset()
}

// CheckMinISR refuses acks=all while the ISR is below min.insync.replicas
// (always fine on one node).
func (p *Partition) CheckMinISR() error {
	if p.r != nil {
		return p.r.checkMinISR()
	}
	return nil
}

// ReadReplica serves a follower: batches up to the log end, not the HW. It
// records the follower's fetch offset first, which may raise the HW.
func (p *Partition) ReadReplica(follower int32, from int64, maxBytes int) ([]byte, int64, error) {
	if p.r == nil {
		return p.Read(from, maxBytes)
	}
	p.r.followerFetched(follower, from)
	hw := p.HighWatermark()
	b, err := p.log.Read(from, maxBytes, p.log.NextOffset())
	if err != nil {
		return nil, hw, fmt.Errorf("replica read %s/%d at %d: %w", p.Topic, p.ID, from, err)
	}
	return b, hw, nil
}

// LogStartOffset is the first offset still held.
func (p *Partition) LogStartOffset() int64 { return p.log.StartOffset() }

// LeaderEpoch is the partition's current leader epoch.
func (p *Partition) LeaderEpoch() int32 {
	if p.r != nil {
		return p.r.state().LeaderEpoch
	}
	return leaderEpoch
}

// Read returns stored batch bytes from offset, at most maxBytes (but at
// least one batch), never past the high watermark, which it also returns.
func (p *Partition) Read(from int64, maxBytes int) ([]byte, int64, error) {
	hw := p.HighWatermark()
	b, err := p.log.Read(from, maxBytes, hw)
	if err != nil {
		return nil, hw, fmt.Errorf("read %s/%d at %d: %w", p.Topic, p.ID, from, err)
	}
	return b, hw, nil
}

// Changed is closed at the next append, waking long polls.
func (p *Partition) Changed() <-chan struct{} {
	if p.r != nil {
		return p.r.changed()
	}
	return p.log.Changed()
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= epoch
// this log holds and where it ends.
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	if p.r == nil {
		return leaderEpoch, p.HighWatermark()
	}
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
