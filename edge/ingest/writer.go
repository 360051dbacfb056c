package ingest

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Batch bounds for one combined append: far below the log's MaxBatchBytes,
// and small enough that one slow batch does not hold many clients.
const (
	maxBatchRecords = 512
	maxBatchBytes   = 1 << 20
)

// partitionWriter combines the publishes queued on one partition into
// RecordBatches, one Log.Append each. Two goroutines per partition, owned by
// the hook (started with the stream, stopped by Drain), do the work so that
// mochi's read loops only decode and queue — they never write, fsync or
// block behind another connection's batch (and their stacks stay shallow):
//
//   - the writer takes everything pending (up to one batch), appends it and
//     settles the QoS 0 records at once; batches holding QoS 1/2 records go
//     to the acker, and the writer goes on with the next batch while the
//     disk syncs (the log's sync loop covers several batches with one fsync);
//   - the acker waits (WaitSynced) for the fsync covering each batch, in
//     order, settles its records and writes the PUBACKs that became ready,
//     one write per connection for all the batches one fsync covered.
//
// Records are written in the order they were queued; mochi hands us one
// publish per connection at a time, so a connection's publishes keep their
// order.
type partitionWriter struct {
	name string
	log  writerLog

	mu           sync.Mutex
	work         sync.Cond // signalled when pending grows or stopping is set
	pending      []*pendingRecord
	pendingBytes int // sum of pending sizes
	stopping     bool
}

type pendingRecord struct {
	rec     recordbatch.Record
	size    int
	durable bool
	// done receives the result for a publisher that waits; nil for a
	// deferred record, whose result settles deferred.
	done     chan error
	deferred *deferredPublish // nil, or &dp
	dp       deferredPublish  // (one allocation for both)
}

// finish settles the record. A deferred record's PUBACK is only marked
// ready here; the caller flushes the connections collected in acks once
// the whole batch is settled, so a connection with several records in the
// batch gets its PUBACKs in one write.
func (p *pendingRecord) finish(h *Hook, err error, acks *ackFlush, now time.Time) {
	if p.deferred != nil {
		p.deferred.settle(h, err, acks, now)
	}
	if p.done != nil {
		p.done <- err
	}
}

// maxDeferred and maxDeferredBytes bound what is queued on a partition:
// beyond either a deferred publisher waits like any other, which stops its
// connection's read loop (back-pressure instead of an unbounded queue of
// QoS 0 payloads).
const (
	maxDeferred      = 4 * maxBatchRecords
	maxDeferredBytes = 4 * maxBatchBytes
)

// writtenBatch is a batch on its way from the writer to the acker.
type writtenBatch struct {
	recs []*pendingRecord
	end  int64 // offset after the batch
	err  error // the append failed
}

// startPartitionWriter starts a partition's writer and acker under h.workers.
// writerLog is the partition log a writer appends to: the storage contract,
// plus the synced end so the acker skips a wait that is already over.
type writerLog interface {
	storage.PartitionLog
	SyncedOffset() int64
}

func (h *Hook) startPartitionWriter(name string, l writerLog) *partitionWriter {
	w := &partitionWriter{name: name, log: l}
	w.work.L = &w.mu
	written := make(chan writtenBatch, 16) // writer → acker; full means the disk is behind
	h.workers.Add(2)
	go func() { defer h.workers.Done(); w.write(h, written) }()
	go func() { defer h.workers.Done(); w.ack(h, written) }()
	return w
}

// stop makes the writer exit once everything queued is written.
func (w *partitionWriter) stop() {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	w.work.Broadcast()
}

// append queues rec. A deferred record (d set) returns at once unless the
// partition's queue is full; d is settled with the result later. Otherwise
// append returns once the batch holding rec is written (and fsynced if
// durable), with the error if it could not be.
func (w *partitionWriter) append(h *Hook, rec recordbatch.Record, durable bool, d *deferredPublish) error {
	p := &pendingRecord{rec: rec, size: len(rec.Key) + len(rec.Value) + 64, durable: durable}
	if d != nil {
		p.dp = *d
		p.deferred = &p.dp
	}
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		err := fmt.Errorf("append to %s: %w", w.name, errStopping)
		if d != nil {
			var acks ackFlush
			p.finish(h, err, &acks, h.now())
			acks.flush()
			return nil
		}
		return err
	}
	if d == nil || len(w.pending) >= maxDeferred || w.pendingBytes >= maxDeferredBytes {
		p.done = make(chan error, 1)
	}
	w.pending = append(w.pending, p)
	w.pendingBytes += p.size
	if len(w.pending) == 1 {
		w.work.Signal()
	}
	w.mu.Unlock()
	if p.done == nil {
		return nil
	}
	return <-p.done
}

// errStopping refuses appends after Drain (OnPublish refuses them before).
var errStopping = errors.New("ingest: writer stopped")

// write is the writer goroutine.
func (w *partitionWriter) write(h *Hook, written chan<- writtenBatch) {
	defer close(written)
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.stopping {
			w.work.Wait()
		}
		if len(w.pending) == 0 {
			w.mu.Unlock()
			return
		}
		batch := w.take()
		w.mu.Unlock()

		recs := make([]recordbatch.Record, len(batch))
		for i, q := range batch {
			recs[i] = q.rec
		}
		end, err := h.appendRecords(w, recs)
		// QoS 0 records are done once written; the others once fsynced.
		durable := false
		var acks ackFlush
		now := h.now()
		for _, q := range batch {
			if q.durable {
				durable = true
			} else {
				q.finish(h, err, &acks, now)
			}
		}
		acks.flush()
		if durable {
			written <- writtenBatch{recs: batch, end: end, err: err}
		}
	}
}

// ack is the acker goroutine: it settles each written batch once the fsync
// covering it is done and writes the PUBACKs that became ready — once for
// every run of batches the same fsync covered.
func (w *partitionWriter) ack(h *Hook, written <-chan writtenBatch) {
	var acks ackFlush
	for b := range written {
		w.settle(h, b, &acks)
	more:
		for {
			select {
			case next, ok := <-written:
				if !ok {
					break more
				}
				if next.err == nil && w.log.SyncedOffset() < next.end {
					acks.flush() // about to wait for an fsync: answer what is ready first
				}
				w.settle(h, next, &acks)
			default:
				break more
			}
		}
		acks.flush()
	}
}

// settle waits for the fsync covering b and settles its durable records.
func (w *partitionWriter) settle(h *Hook, b writtenBatch, acks *ackFlush) {
	err := b.err
	if err == nil {
		if serr := w.log.WaitSynced(h.ctx, b.end); serr != nil {
			err = fmt.Errorf("fsync %s: %w", w.name, serr)
		}
	}
	now := h.now()
	for _, q := range b.recs {
		if q.durable {
			q.finish(h, err, acks, now)
		}
	}
}

// take removes up to one batch's worth of records from pending (mu held).
func (w *partitionWriter) take() []*pendingRecord {
	n, bytes := 0, 0
	for n < len(w.pending) && n < maxBatchRecords && (n == 0 || bytes+w.pending[n].size <= maxBatchBytes) {
		bytes += w.pending[n].size
		n++
	}
	w.pendingBytes -= bytes
	batch := w.pending[:n:n]
	if n == len(w.pending) {
		w.pending = nil
	} else {
		w.pending = append([]*pendingRecord(nil), w.pending[n:]...)
	}
	return batch
}

// appendRecords writes recs as one batch and returns the offset after it.
func (h *Hook) appendRecords(w *partitionWriter, recs []recordbatch.Record) (int64, error) {
	b, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		return 0, fmt.Errorf("build batch for %s: %w", w.name, err)
	}
	res, err := h.appendBatch(w.log, h.ctx, b, storage.AppendOptions{LeaderEpoch: -1})
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", w.name, err)
	}
	return res.LastOffset + 1, nil
}
