package bridge

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Exactly once into any Kafka (target kafka, exactly_once: true), the way
// Kafka Connect's exactly-once source connectors do it. Each edge partition
// has its own transactional producer (transactional id
// tributary-bridge/<edge>/<stream>/<partition>) and a cursor record (key
// <edge>/<stream>/<partition>, value the next edge offset) in a compacted
// topic of the target cluster. Every transaction writes a run of records
// and the cursor after them, so the target holds both or neither.
//
// A session starts by initializing the producer, which fences any older
// instance and aborts its open transaction; only then it reads the cursor
// (read_committed), so nothing a zombie might still commit can slip in
// between. The local cursor follows the target's and only drives retention
// and status; when the target has no cursor yet (a bridge switched from
// at-least-once), the local one is where forwarding starts.

// txnSession forwards in transactions until an error; the next session
// starts again from the cursor committed in the target.
func (f *forwarder) txnSession(ctx context.Context) (progressed bool, err error) {
	_, cp, err := f.target(ctx)
	if err != nil {
		return false, err
	}
	if err := f.b.ensureCursorTopic(ctx); err != nil {
		return false, fmt.Errorf("%w: %w", errMetadata, err)
	}
	f.mu.Lock()
	f.corePartition = cp
	f.mu.Unlock()

	cfg := f.b.cfg
	cl, err := kgo.NewClient(append(f.b.sec.clientOpts(),
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID("tributary-bridge-"+f.b.edgeID),
		kgo.TransactionalID(f.txnID()),
		kgo.TransactionTimeout(cfg.TransactionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgoCodec(f.b.codec)),
		kgo.ProducerBatchMaxBytes(int32(f.maxBatch+64<<10)),
		kgo.DialTimeout(cfg.RequestTimeout),
		kgo.RetryTimeout(cfg.RequestTimeout),
		kgo.ProduceRequestTimeout(cfg.RequestTimeout),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)...)
	if err != nil {
		return false, fmt.Errorf("transactional producer: %w", err)
	}
	defer cl.Close()
	ictx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	_, _, err = cl.ProducerID(ictx) // fences older instances first
	cancel()
	if err != nil {
		return false, fmt.Errorf("init transactional producer %s: %w", f.txnID(), err)
	}
	next, found, err := f.b.readTxnCursor(ctx, cl, f.txnCursorKey())
	if err != nil {
		return false, fmt.Errorf("%w: read cursor: %w", errMetadata, err)
	}
	if found {
		f.resumeAt(next)
	} else {
		f.mu.Lock()
		next = f.cursor
		f.mu.Unlock()
	}

	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		changed, synced := f.log.Changed(), f.log.Synced()
		raw, at, err := f.readFrom(next)
		if err != nil {
			return progressed, err
		}
		next = at
		if raw == nil {
			if err := f.idle(ctx, next, changed, synced, idle); err != nil {
				return progressed, err
			}
			continue
		}
		recs, after, err := f.collect(raw, next)
		if err != nil {
			return progressed, err
		}
		// A backlog goes in larger transactions: each costs the target a
		// few fsyncs (state, markers) whatever its size.
		for read := len(raw); len(recs) > 0 && read < txnRunBatches*f.maxBatch; {
			more, at, err := f.readFrom(after)
			if err != nil {
				return progressed, err
			}
			if more == nil {
				break
			}
			rs, a, err := f.collect(more, at)
			if err != nil {
				return progressed, err
			}
			recs, after, read = append(recs, rs...), a, read+len(more)
		}
		if len(recs) > 0 {
			n, err := f.commitRun(ctx, cl, cp, recs, after)
			if err != nil {
				return progressed, err
			}
			if err := f.saveCursor(after); err != nil {
				return progressed, err
			}
			f.ack(inflight{next: after, records: len(recs), bytes: n})
			progressed = true
		}
		next = after
	}
}

// txnRunBatches is how many edge reads of max_batch_bytes one transaction
// takes at most.
const txnRunBatches = 8

func (f *forwarder) txnID() string {
	return "tributary-bridge/" + f.txnCursorKey()
}

func (f *forwarder) txnCursorKey() string {
	return f.b.source() + "/" + f.stream + "/" + strconv.Itoa(int(f.partition))
}

// resumeAt makes the target's cursor the local one.
func (f *forwarder) resumeAt(next int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if next == f.cursor {
		return
	}
	if err := f.b.store.PutCursor(f.cursorKey, next); err != nil {
		f.logger.Warn("local copy of the cursor not saved", "err", err)
	}
	f.logger.Info("resuming at the cursor committed in the target", "cursor", next, "local_cursor", f.cursor)
	f.cursor = next
	f.log.SetRetentionFloor(next)
}

// commitRun writes recs and the cursor after them in one transaction and
// returns the record bytes sent. An error leaves nothing visible in the
// target (aborted, or fenced and aborted by the next instance).
func (f *forwarder) commitRun(ctx context.Context, cl *kgo.Client, cp int32, recs []recordbatch.Record, after int64) (int, error) {
	if err := cl.BeginTransaction(); err != nil {
		return 0, fmt.Errorf("begin transaction: %w", err)
	}
	size := 0
	var produceErr error
	errs := make(chan error, 1)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			select {
			case errs <- err:
			default:
			}
		}
	}
	for _, r := range recs {
		kr := &kgo.Record{Topic: f.coreTopic, Partition: cp, Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		size += recordSize(r)
		cl.Produce(ctx, kr, promise)
	}
	cl.Produce(ctx, &kgo.Record{
		Topic: f.b.cfg.CursorTopic, Partition: 0,
		Key: []byte(f.txnCursorKey()), Value: strconv.AppendInt(nil, after, 10),
	}, promise)
	// kgo retries a produce for ever while it cannot tell whether a batch
	// was written (a target that went away mid-request): unbounded, the
	// session would hang here and its status never show the outage. Past
	// the transaction timeout the target aborts the transaction anyway.
	fctx, fcancel := context.WithTimeout(ctx, f.b.cfg.TransactionTimeout)
	defer fcancel()
	if err := cl.Flush(fctx); err != nil {
		produceErr = fmt.Errorf("flush: %w", err)
	}
	select {
	case err := <-errs:
		produceErr = err
	default:
	}
	if produceErr != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.b.cfg.RequestTimeout)
		defer cancel()
		if err := cl.AbortBufferedRecords(actx); err == nil {
			_ = cl.EndTransaction(actx, kgo.TryAbort)
		}
		return 0, fmt.Errorf("produce to %s/%d in a transaction: %w", f.coreTopic, cp, produceErr)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// Whether it committed is read back from the target's cursor by
		// the next session.
		return 0, fmt.Errorf("commit transaction to %s/%d: %w", f.coreTopic, cp, err)
	}
	return size, nil
}

// kgoCodec maps a recordbatch codec to franz-go's.
func kgoCodec(codec int) kgo.CompressionCodec {
	switch codec {
	case recordbatch.CompressionGzip:
		return kgo.GzipCompression()
	case recordbatch.CompressionSnappy:
		return kgo.SnappyCompression()
	case recordbatch.CompressionLZ4:
		return kgo.Lz4Compression()
	case recordbatch.CompressionZstd:
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

// ensureCursorTopic creates the compacted cursor topic once per bridge.
func (b *Bridge) ensureCursorTopic(ctx context.Context) error {
	b.mu.Lock()
	done := b.cursorTopicReady
	b.mu.Unlock()
	if done {
		return nil
	}
	if _, err := b.admin.describe(ctx, b.cfg.CursorTopic); errors.Is(err, errTopicMissing) {
		if err := b.admin.create(ctx, b.cfg.CursorTopic, 1, map[string]string{"cleanup.policy": "compact"}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	b.mu.Lock()
	b.cursorTopicReady = true
	b.mu.Unlock()
	return nil
}

// readTxnCursor reads the last committed cursor under key from partition 0
// of the cursor topic: Fetch with read_committed from the log start to the
// high watermark it first sees, dropping aborted transactions' records.
func (b *Bridge) readTxnCursor(ctx context.Context, cl *kgo.Client, key string) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*b.cfg.RequestTimeout)
	defer cancel()
	topic := b.cfg.CursorTopic
	var value []byte
	found := false
	from := int64(0)
	// end is the partition's high watermark at the first answer, after
	// this producer's InitProducerId fenced its older instances: every
	// cursor it committed lies below. The cursor topic is shared by every
	// partition's producer, so another one's open transaction (an instance
	// killed mid-transaction, not yet aborted) can hold the last stable
	// offset below records this one committed after it; stopping at the
	// LSO would return an older cursor and re-send what the target already
	// holds. So the read waits until the LSO passes end.
	end := int64(-1)
	wait := 20 * time.Millisecond
	for {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MaxBytes, req.IsolationLevel = -1, 0, 8<<20, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.LogStartOffset, rp.CurrentLeaderEpoch = 0, from, 8<<20, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		sp, err := fetchPartition(ctx, cl, req, topic)
		if err != nil {
			if errors.Is(err, kerr.OffsetOutOfRange) && from == 0 {
				// Compaction or retention moved the start: begin there.
				if from, err = listStart(ctx, cl, topic); err == nil {
					continue
				}
			}
			return 0, false, err
		}
		next, err := committedRecords(sp.RecordBatches, sp.AbortedTransactions, func(r recordbatch.Record) {
			if string(r.Key) == key {
				value, found = r.Value, r.Value != nil
			}
		})
		if err != nil {
			return 0, false, fmt.Errorf("cursor topic at %d: %w", from, err)
		}
		if end < 0 {
			end = sp.HighWatermark
		}
		if next > from {
			from = next
		}
		if from >= end {
			break
		}
		if len(sp.RecordBatches) == 0 || from >= sp.LastStableOffset {
			// Held at the LSO by an open transaction: it ends when its
			// producer starts again or at its transaction timeout.
			if !tick.Sleep(ctx, wait) {
				return 0, false, fmt.Errorf("cursor topic: committed records up to %d not readable by %d (last stable offset %d; an open transaction of another producer): %w",
					end, from, sp.LastStableOffset, ctx.Err())
			}
			wait = min(2*wait, 500*time.Millisecond)
		}
	}
	if !found {
		return 0, false, nil
	}
	off, err := strconv.ParseInt(string(value), 10, 64)
	if err != nil || off < 0 {
		return 0, false, fmt.Errorf("cursor %q: bad value %q", key, value)
	}
	return off, true, nil
}

// fetchPartition sends a one-partition fetch to the partition's leader.
func fetchPartition(ctx context.Context, cl *kgo.Client, req *kmsg.FetchRequest, topic string) (kmsg.FetchResponseTopicPartition, error) {
	var sp kmsg.FetchResponseTopicPartition
	leader, id, err := partitionLeader(ctx, cl, topic)
	if err != nil {
		return sp, err
	}
	// The client picks the newest Fetch version both sides know; from v13
	// the topic goes by id.
	req.Topics[0].TopicID = id
	resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
	if err != nil {
		return sp, fmt.Errorf("fetch %s: %w", topic, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return sp, fmt.Errorf("fetch %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if (t.Topic == topic || t.TopicID == id) && p.Partition == 0 {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return sp, fmt.Errorf("fetch %s/0: %w", topic, err)
				}
				return p, nil
			}
		}
	}
	return sp, fmt.Errorf("fetch %s/0: partition missing from response", topic)
}

func partitionLeader(ctx context.Context, cl *kgo.Client, topic string) (int32, [16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return -1, [16]byte{}, fmt.Errorf("metadata for %s: %w", topic, err)
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return -1, [16]byte{}, fmt.Errorf("metadata for %s: %w", topic, err)
		}
		for _, p := range t.Partitions {
			if p.Partition == 0 && p.Leader >= 0 {
				return p.Leader, t.TopicID, nil
			}
		}
	}
	return -1, [16]byte{}, fmt.Errorf("metadata for %s: partition 0 has no leader", topic)
}

func listStart(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 0, -2
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("list start of %s: %w", topic, err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, fmt.Errorf("list start of %s: no answer", topic)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		return 0, fmt.Errorf("list start of %s: %w", topic, err)
	}
	return p.Offset, nil
}

// committedRecords calls fn for every record of a read_committed fetch
// that is not part of an aborted transaction (the client's side of KIP-98:
// a producer in the aborted list is skipped from the aborted
// transaction's first offset to its abort marker). It returns the offset
// after the last batch.
func committedRecords(batches []byte, aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction, fn func(recordbatch.Record)) (int64, error) {
	aborted = append([]kmsg.FetchResponseTopicPartitionAbortedTransaction(nil), aborted...)
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	skipping := map[int64]bool{}
	next := int64(-1)
	for len(batches) > 0 {
		h, err := recordbatch.ParseHeader(batches)
		if errors.Is(err, recordbatch.ErrShort) {
			break // a partial batch at the end of a fetch
		}
		if err != nil {
			return next, err
		}
		if h.Size() > len(batches) {
			break
		}
		b := batches[:h.Size()]
		batches = batches[h.Size():]
		for len(aborted) > 0 && aborted[0].FirstOffset <= h.LastOffset() {
			skipping[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		next = h.NextOffset()
		switch {
		case h.IsControl():
			if typ, err := recordbatch.ParseControl(b); err == nil && typ == recordbatch.ControlAbort {
				delete(skipping, h.ProducerID)
			}
			continue
		case h.IsTransactional() && skipping[h.ProducerID]:
			continue
		}
		if _, err := recordbatch.Validate(b); err != nil {
			return next, err
		}
		recs, err := recordbatch.Records(b)
		if err != nil {
			return next, err
		}
		for _, r := range recs {
			fn(r)
		}
	}
	return next, nil
}
