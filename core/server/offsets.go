package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/groups"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Committed offsets are replicated the way Kafka does it:
// every successful OffsetCommit is also appended, as records keyed by
// (group, topic, partition), to the group's partition of the offsets topic
// and acknowledged only once that partition's ISR has it. A broker that
// becomes leader of an offsets partition replays it into its local store
// before it answers for the partition's groups, so commits survive the loss
// of the coordinator. The coordinator itself (core/groups) keeps using the
// local store unchanged.

// offsetKey and offsetValue are the record key and value (JSON: small,
// readable with any consumer, and the key is stable for compaction).
type offsetKey struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Members marks the group's membership record (a groups.Snapshot as
	// the value) instead of a committed offset.
	Members bool `json:"members,omitempty"`
}

// replicateGroup appends a group's membership, as of a completed
// rebalance, to its offsets partition and waits for the ISR, so that the
// next coordinator carries on with the same generation and members.
func (s *Server) replicateGroup(snap groups.Snapshot) {
	k, _ := json.Marshal(offsetKey{Group: snap.Group, Members: true})
	v, err := json.Marshal(snap)
	if err != nil {
		s.logger.Error("encode group membership", "group", snap.Group, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Replication.AckTimeout)
	defer cancel()
	rec := recordbatch.Record{Timestamp: time.Now().UnixMilli(), Key: k, Value: v}
	if err := s.appendOffsets(ctx, snap.Group, []recordbatch.Record{rec}); err != nil {
		// The group goes on here; only a coordinator move would now make
		// its members rejoin.
		s.logger.Warn("replicating group membership failed", "group", snap.Group, "generation", snap.Generation, "err", err)
	}
}

// restorer is implemented by a coordinator that can take over a group's
// replicated membership (core/groups).
type restorer interface{ Restore(groups.Snapshot) }

type offsetValue struct {
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
	CommitMs    int64  `json:"commit_ms"`
}

// offsetsPartitionOf is the offsets-topic partition coordinating group.
func (s *Server) offsetsPartitionOf(group string) (int32, bool) {
	n, ok := s.cluster.Partitions(cluster.OffsetsTopic)
	if !ok || n == 0 {
		return 0, false
	}
	return cluster.CoordinatorPartition(group, n), true
}

// replicateCommit appends the offsets the coordinator just committed to the
// offsets topic and waits for the ISR; partitions it cannot replicate get an
// error the client retries.
func (s *Server) replicateCommit(ctx context.Context, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) {
	stored, err := s.store.FetchOffsets(req.Group)
	if err != nil {
		s.failCommits(resp, kerr.UnknownServerError.Code)
		return
	}
	var recs []recordbatch.Record
	now := time.Now().UnixMilli()
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				continue
			}
			oc, ok := stored[meta.TopicPartition{Topic: t.Topic, Partition: p.Partition}]
			if !ok {
				continue
			}
			k, _ := json.Marshal(offsetKey{Group: req.Group, Topic: t.Topic, Partition: p.Partition})
			v, _ := json.Marshal(offsetValue{Offset: oc.Offset, LeaderEpoch: oc.LeaderEpoch, Metadata: oc.Metadata, CommitMs: oc.CommitMs})
			recs = append(recs, recordbatch.Record{Timestamp: now, Key: k, Value: v})
		}
	}
	if len(recs) == 0 {
		return
	}
	if err := s.appendOffsets(ctx, req.Group, recs); err != nil {
		s.logger.Warn("replicating committed offsets failed", "group", req.Group, "err", err)
		code := errorCode(err)
		switch code {
		case kerr.NotLeaderForPartition.Code, kerr.UnknownTopicOrPartition.Code:
			code = kerr.NotCoordinator.Code
		case kerr.NotEnoughReplicas.Code, kerr.NotEnoughReplicasAfterAppend.Code, kerr.RequestTimedOut.Code:
			code = kerr.RequestTimedOut.Code
		default:
			code = kerr.UnknownServerError.Code
		}
		s.failCommits(resp, code)
	}
}

// tombstones are the records that delete a group's offsets for tps.
func tombstones(group string, tps []meta.TopicPartition) []recordbatch.Record {
	now := time.Now().UnixMilli()
	var recs []recordbatch.Record
	for _, tp := range tps {
		k, _ := json.Marshal(offsetKey{Group: group, Topic: tp.Topic, Partition: tp.Partition})
		recs = append(recs, recordbatch.Record{Timestamp: now, Key: k})
	}
	return recs
}

// groupPartitions lists the partitions a group has offsets for.
func (s *Server) groupPartitions(group string) []meta.TopicPartition {
	offs, err := s.store.FetchOffsets(group)
	if err != nil {
		return nil
	}
	var tps []meta.TopicPartition
	for tp := range offs {
		tps = append(tps, tp)
	}
	return tps
}

// replicateDeletes appends tombstones for offsets a DeleteGroups or
// OffsetDelete removed, so a later coordinator does not bring them back.
// before holds each group's partitions as they were before the request.
func (s *Server) replicateDeletes(ctx context.Context, req kmsg.Request, resp kmsg.Response, before map[string][]meta.TopicPartition) {
	switch r := resp.(type) {
	case *kmsg.DeleteGroupsResponse:
		for i := range r.Groups {
			g := &r.Groups[i]
			if g.ErrorCode != 0 || len(before[g.Group]) == 0 {
				continue
			}
			k, _ := json.Marshal(offsetKey{Group: g.Group, Members: true})
			recs := append(tombstones(g.Group, before[g.Group]), recordbatch.Record{Timestamp: time.Now().UnixMilli(), Key: k})
			if err := s.appendOffsets(ctx, g.Group, recs); err != nil {
				s.logger.Warn("replicating group deletion failed", "group", g.Group, "err", err)
				g.ErrorCode = kerr.RequestTimedOut.Code
			}
		}
	case *kmsg.OffsetDeleteResponse:
		dreq := req.(*kmsg.OffsetDeleteRequest)
		if r.ErrorCode != 0 {
			return
		}
		var tps []meta.TopicPartition
		for _, t := range r.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode == 0 {
					tps = append(tps, meta.TopicPartition{Topic: t.Topic, Partition: p.Partition})
				}
			}
		}
		if len(tps) == 0 {
			return
		}
		if err := s.appendOffsets(ctx, dreq.Group, tombstones(dreq.Group, tps)); err != nil {
			s.logger.Warn("replicating offset deletion failed", "group", dreq.Group, "err", err)
			r.ErrorCode = kerr.RequestTimedOut.Code
		}
	}
}

// appendOffsets appends recs to the offsets partition that coordinates
// group (which this broker must lead) and waits until its ISR has them.
func (s *Server) appendOffsets(ctx context.Context, group string, recs []recordbatch.Record) error {
	return s.appendOffsetsMaybeWait(ctx, group, recs, true)
}

// appendOffsetsMaybeWait is appendOffsets that, with durable false, returns
// once the records are in the leader's log: a later durable append to the
// same partition covers them, as the log is acknowledged in order.
func (s *Server) appendOffsetsMaybeWait(ctx context.Context, group string, recs []recordbatch.Record, durable bool) error {
	part, ok := s.offsetsPartitionOf(group)
	if !ok {
		return fmt.Errorf("offsets topic: %w", errNotLeader)
	}
	p, err := s.partition(cluster.OffsetsTopic, part)
	if err != nil {
		return err
	}
	batch, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		return fmt.Errorf("encode offsets: %w", err)
	}
	if err := p.CheckMinISR(); err != nil {
		return err
	}
	if _, err := p.Append(ctx, batch, false); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return p.WaitDurable(ctx, p.EndOffset())
}

func (s *Server) failCommits(resp *kmsg.OffsetCommitResponse, code int16) {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].ErrorCode == 0 {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
}

// loadOffsets replays an offsets partition into the local store; the
// replica answers for its groups only once this is done.
func (r *replica) loadOffsets() error {
	store := r.m.s.store
	l := r.log
	from, end := l.StartOffset(), l.NextOffset()
	n := 0
	members := map[string]*groups.Snapshot{} // the last membership per group
	txnRecs := map[string][]byte{}           // the last transaction record per key (txn_cluster.go)

	if err := r.m.s.clearTxnPartition(r.part); err != nil { // transactions (txn_cluster.go)
		return err
	}
	for from < end {
		b, err := l.Read(from, 1<<20, end)
		if err != nil {
			return fmt.Errorf("read offsets at %d: %w", from, err)
		}
		if len(b) == 0 {
			break
		}
		err = recordbatch.Split(b, func(h recordbatch.Header, batch []byte) error {
			from = h.NextOffset()
			recs, err := recordbatch.Records(batch)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if r.m.s.replayTxnRecord(rec, txnRecs) {
					continue
				}
				var k offsetKey
				var v offsetValue
				if json.Unmarshal(rec.Key, &k) != nil || k.Group == "" {
					continue
				}
				if k.Members {
					var snap groups.Snapshot
					if rec.Value != nil && json.Unmarshal(rec.Value, &snap) == nil {
						members[k.Group] = &snap
					} else {
						delete(members, k.Group)
					}
					continue
				}
				tp := meta.TopicPartition{Topic: k.Topic, Partition: k.Partition}
				if rec.Value == nil {
					// A tombstone: DeleteGroups or OffsetDelete.
					if err := store.DeleteOffsets(k.Group, []meta.TopicPartition{tp}); err != nil {
						return err
					}
					n++
					continue
				}
				if json.Unmarshal(rec.Value, &v) != nil {
					continue
				}
				if err := store.CommitOffsets(k.Group, map[meta.TopicPartition]meta.OffsetCommit{
					tp: {Offset: v.Offset, LeaderEpoch: v.LeaderEpoch, Metadata: v.Metadata, CommitMs: v.CommitMs},
				}); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay offsets: %w", err)
		}
	}
	if n > 0 {
		r.m.s.logger.Info("loaded committed offsets", "partition", r.part, "commits", n)
	}
	if gr, ok := r.m.s.groups.(restorer); ok {
		for _, snap := range members {
			gr.Restore(*snap)
		}
	}
	return r.m.s.loadTxnPartition(r.part, txnRecs) // transactions (txn_cluster.go)
}
