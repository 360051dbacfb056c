package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Transactions in a cluster. The transaction state log is the offsets
// topic itself: a transactional id is coordinated by the leader of the
// offsets partition a group of the same name would use, and its state
// records (key {"txn": id}) and the offsets a TxnOffsetCommit staged (key
// {"txn_offsets": group, "pid": n}) are appended there next to committed
// offsets, acknowledged by the ISR, and replayed by the next leader
// (replayTxnRecord, from loadOffsets). One log per coordinator keeps the
// coordinator moves of groups and transactions the same event.
//
// Markers for partitions led elsewhere go to their leader as a
// WriteTxnMarkers request (27_write_txn_markers.go), one per broker; a
// group's marker goes to its coordinator, which settles the staged offsets.

// txnRecordKey is the key of a transaction record in the offsets topic; an
// offsetKey never has these fields, and loadOffsets skips keys without a
// group.
type txnRecordKey struct {
	Txn        string `json:"txn,omitempty"`
	TxnOffsets string `json:"txn_offsets,omitempty"`
	PID        int64  `json:"pid,omitempty"`
}

// txnStoreErr turns a transaction-log write that failed because this broker
// no longer leads (or has) the log's partition into NOT_COORDINATOR, which
// sends the producer to look the coordinator up again.
func txnStoreErr(err error) error {
	switch errorCode(err) {
	case kerr.NotLeaderForPartition.Code, kerr.UnknownTopicOrPartition.Code:
		return fmt.Errorf("%w: %w", txns.ErrNotCoordinator, err)
	}
	return err
}

// replicateTxnState appends a transaction's state to its offsets partition.
func (s *Server) replicateTxnState(ctx context.Context, id string, v []byte, durable bool) error {
	k, _ := json.Marshal(txnRecordKey{Txn: id})
	rec := recordbatch.Record{Timestamp: time.Now().UnixMilli(), Key: k, Value: v}
	if err := s.appendOffsetsMaybeWait(ctx, id, []recordbatch.Record{rec}, durable); err != nil {
		return txnStoreErr(fmt.Errorf("replicate transaction %q: %w", id, err))
	}
	return nil
}

// replicateStaged appends a group's staged offsets for pid (nil: settled).
func (s *Server) replicateStaged(ctx context.Context, group string, pid int64, v []byte) error {
	k, _ := json.Marshal(txnRecordKey{TxnOffsets: group, PID: pid})
	rec := recordbatch.Record{Timestamp: time.Now().UnixMilli(), Key: k, Value: v}
	if err := s.appendOffsets(ctx, group, []recordbatch.Record{rec}); err != nil {
		return fmt.Errorf("replicate staged offsets of %q: %w", group, err)
	}
	return nil
}

// replicateOffsets appends committed offsets of group to its partition.
func (s *Server) replicateOffsets(ctx context.Context, group string, offs map[meta.TopicPartition]meta.OffsetCommit) error {
	var recs []recordbatch.Record
	for tp, oc := range offs {
		k, _ := json.Marshal(offsetKey{Group: group, Topic: tp.Topic, Partition: tp.Partition})
		v, _ := json.Marshal(offsetValue{Offset: oc.Offset, LeaderEpoch: oc.LeaderEpoch, Metadata: oc.Metadata, CommitMs: oc.CommitMs})
		recs = append(recs, recordbatch.Record{Timestamp: oc.CommitMs, Key: k, Value: v})
	}
	if err := s.appendOffsets(ctx, group, recs); err != nil {
		return fmt.Errorf("replicate transactional offsets of %q: %w", group, err)
	}
	return nil
}

// replayTxnRecord notes a transaction record of the offsets log in last
// (its key → the latest value, nil for a tombstone); it reports false for
// records that are not about transactions.
func (s *Server) replayTxnRecord(rec recordbatch.Record, last map[string][]byte) bool {
	var k txnRecordKey
	if json.Unmarshal(rec.Key, &k) != nil || (k.Txn == "" && k.TxnOffsets == "") {
		return false
	}
	key := txnStateKey(k.Txn)
	if k.TxnOffsets != "" {
		key = txnOffsetsKey(k.TxnOffsets, k.PID)
	}
	last[key] = rec.Value
	return true
}

// loadTxnPartition hands the coordinator the transactions of an offsets
// partition this broker now leads, from the last record of each key that
// loadOffsets replayed. Staged offsets go to the metadata store, where
// TxnOffsetCommit and the markers read them; one write per key, not per
// record, so a long state log loads in one pass.
func (s *Server) loadTxnPartition(part int32, last map[string][]byte) error {
	var saved []txns.Txn
	for key, v := range last {
		if id, ok := strings.CutPrefix(key, txnStatePrefix); ok {
			var t txns.Txn
			if v != nil && json.Unmarshal(v, &t) == nil && t.ID == id {
				saved = append(saved, t)
			}
			continue
		}
		var err error
		if v == nil {
			if err = s.store.DeleteValue(key); errors.Is(err, meta.ErrNotFound) {
				err = nil
			}
		} else {
			err = s.store.PutValue(key, v)
		}
		if err != nil {
			return fmt.Errorf("load staged offsets %q: %w", key, err)
		}
	}
	s.txns.Load(saved)
	s.txnb.setLoaded(part, true)
	return nil
}

// unloadTxnPartition forgets the transactions of an offsets partition this
// broker no longer leads.
func (s *Server) unloadTxnPartition(part int32) {
	s.txnb.setLoaded(part, false)
	s.txns.Unload(func(id string) bool {
		p, ok := s.offsetsPartitionOf(id)
		return !ok || p != part
	})
}

// markerTarget is where a marker goes: the leader of a partition, or the
// coordinator of a group (its offsets partition's leader).
type markerTarget struct {
	tp    txns.TopicPartition
	group string
}

// writeRemoteMarkers sends the markers this broker cannot write itself to
// their leaders, one WriteTxnMarkers request per broker.
func (s *Server) writeRemoteMarkers(ctx context.Context, pid int64, epoch int16, commit bool, targets []markerTarget) error {
	md := s.cluster.Metadata()
	byBroker := map[int32][]txns.TopicPartition{}
	for _, t := range targets {
		tp := t.tp
		if t.group != "" {
			part, ok := s.offsetsPartitionOf(t.group)
			if !ok {
				return fmt.Errorf("marker for group %q: no offsets topic", t.group)
			}
			tp = txns.TopicPartition{Topic: cluster.OffsetsTopic, Partition: part}
		}
		topic, ok := md.Topics[tp.Topic]
		if !ok || int(tp.Partition) >= len(topic.Partitions) {
			continue // deleted since: nothing to mark
		}
		leader := topic.Partitions[tp.Partition].Leader
		if leader == cluster.NoLeader {
			return fmt.Errorf("marker for %s/%d: %w", tp.Topic, tp.Partition, errNotLeader)
		}
		if !containsTP(byBroker[leader], tp) {
			byBroker[leader] = append(byBroker[leader], tp)
		}
	}
	// One request per broker, all brokers at once.
	errs := make([]error, 0, len(byBroker))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for id, tps := range byBroker {
		b, ok := md.Brokers[id]
		if !ok {
			errs = append(errs, fmt.Errorf("marker: broker %d unknown", id))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.sendMarkers(ctx, id, b.KafkaAddr, pid, epoch, commit, tps)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func containsTP(tps []txns.TopicPartition, tp txns.TopicPartition) bool {
	for _, x := range tps {
		if x == tp {
			return true
		}
	}
	return false
}

// byTopic groups partitions by topic, topics in the order first seen.
func byTopic(tps []txns.TopicPartition) ([]string, map[string][]int32) {
	var topics []string
	parts := map[string][]int32{}
	for _, tp := range tps {
		if _, ok := parts[tp.Topic]; !ok {
			topics = append(topics, tp.Topic)
		}
		parts[tp.Topic] = append(parts[tp.Topic], tp.Partition)
	}
	return topics, parts
}

// sendMarkers is one WriteTxnMarkers round trip to broker id (markerConns.ask).
func (s *Server) sendMarkers(ctx context.Context, id int32, addr string, pid int64, epoch int16, commit bool, tps []txns.TopicPartition) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	req.Version = 1
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = pid, epoch, commit
	topics, parts := byTopic(tps)
	for _, topic := range topics {
		mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		mt.Topic, mt.Partitions = topic, parts[topic]
		m.Topics = append(m.Topics, mt)
	}
	req.Markers = append(req.Markers, m)
	resp := kmsg.NewPtrWriteTxnMarkersResponse()
	if err := s.txnb.conns.ask(ctx, s, id, addr, req, resp); err != nil {
		return fmt.Errorf("markers to broker %d: %w", id, err)
	}
	var errs []error
	for _, rm := range resp.Markers {
		for _, t := range rm.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("marker for %s/%d on broker %d: %w", t.Topic, p.Partition, id, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// settleOffsetsPartition settles every group of an offsets partition that
// has offsets staged by pid (a group marker sent by a remote coordinator).
func (s *Server) settleOffsetsPartition(ctx context.Context, part int32, pid int64, commit bool) error {
	keys, _, err := s.store.Values(txnOffsetsPrefix)
	if err != nil {
		return fmt.Errorf("staged offsets: %w", err)
	}
	suffix := "/" + strconv.FormatInt(pid, 10)
	var errs []error
	for _, k := range keys {
		if !strings.HasSuffix(k, suffix) {
			continue
		}
		group := strings.TrimSuffix(strings.TrimPrefix(k, txnOffsetsPrefix), suffix)
		if p, ok := s.offsetsPartitionOf(group); ok && p == part {
			errs = append(errs, s.settleLocal(ctx, group, pid, commit))
		}
	}
	return errors.Join(errs...)
}

// ownsOffsetsPartition reports whether this broker coordinates an offsets
// partition (leads it and has replayed it).
func (s *Server) ownsOffsetsPartition(part int32) bool {
	r, err := s.replicas.lookup(cluster.OffsetsTopic, part)
	return err == nil && r.coordinates()
}

// clearTxnPartition drops the local copy of an offsets partition's
// transaction records before it is replayed: the log is the truth, and a
// tombstone this broker missed may be compacted away by now.
func (s *Server) clearTxnPartition(part int32) error {
	for _, prefix := range []string{txnStatePrefix, txnOffsetsPrefix} {
		keys, _, err := s.store.Values(prefix)
		if err != nil {
			return fmt.Errorf("transaction records: %w", err)
		}
		for _, k := range keys {
			name := strings.TrimPrefix(k, prefix)
			if prefix == txnOffsetsPrefix {
				name = name[:max(strings.LastIndexByte(name, '/'), 0)]
			}
			if p, ok := s.offsetsPartitionOf(name); ok && p == part {
				if err := s.store.DeleteValue(k); err != nil && !errors.Is(err, meta.ErrNotFound) {
					return fmt.Errorf("clear transaction record %q: %w", k, err)
				}
			}
		}
	}
	return nil
}

// rewriteRemoteMarker is RewriteMarkers for a partition led by another
// broker: DescribeProducers tells whether the producer's transaction there
// is open from before the mark, and only then is the marker sent again.
func (s *Server) rewriteRemoteMarker(ctx context.Context, e txns.Ended, m txns.Mark) error {
	md := s.cluster.Metadata()
	topic := md.Topics[m.Topic]
	if topic == nil || int(m.Partition) >= len(topic.Partitions) {
		return nil // deleted since: nothing to mark
	}
	leader := topic.Partitions[m.Partition].Leader
	b, ok := md.Brokers[leader]
	if leader == cluster.NoLeader || !ok {
		return fmt.Errorf("rewrite marker for %s/%d: %w", m.Topic, m.Partition, errNotLeader)
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = m.Topic, []int32{m.Partition}
	req.Topics = append(req.Topics, rt)
	resp := kmsg.NewPtrDescribeProducersResponse()
	if err := s.txnb.conns.ask(ctx, s, leader, b.KafkaAddr, req, resp); err != nil {
		return fmt.Errorf("describe producers on broker %d: %w", leader, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("describe producers of %s/%d: %w", m.Topic, m.Partition, err)
			}
			for _, ap := range p.ActiveProducers {
				if ap.ProducerID == e.ProducerID && ap.CurrentTxnStartOffset >= 0 && ap.CurrentTxnStartOffset < m.Offset {
					s.logger.Info("rewriting a transaction marker lost in a crash", "topic", m.Topic, "partition", m.Partition, "pid", e.ProducerID, "offset", m.Offset, "leader", leader)
					return s.sendMarkers(ctx, leader, b.KafkaAddr, e.ProducerID, e.Epoch, e.Commit, []txns.TopicPartition{{Topic: m.Topic, Partition: m.Partition}})
				}
			}
		}
	}
	return nil
}
