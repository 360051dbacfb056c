package ingest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Batch bounds for one combined append: far below the log's MaxBatchBytes,
// and small enough that one slow batch does not hold many clients.
const (
	maxBatchRecords = 512
	maxBatchBytes   = 1 << 20
)

// errLead hands the writing role to a waiting publisher.
var errLead = errors.New("ingest: take over as batch leader")

// partitionWriter combines concurrent publishes to one partition into one
// RecordBatch and one Log.Append. Whoever finds no write in progress leads:
// it takes everything pending and writes it as one batch, again and again
// while what is pending starts with deferred records (whose publishers did
// not stay to lead), hands the role to the oldest publisher still waiting
// (if one is at the head), and only then waits (WaitSynced) for an fsync
// covering its batches if they hold QoS 1/2 records — so the next batch is
// written while the disk syncs, and the log's sync loop covers both with one
// fsync. There is no background goroutine. Records are written in the order
// they were queued; mochi hands us one publish per connection at a time, so
// a connection's publishes keep their order.
type partitionWriter struct {
	name string
	log  *storage.Log

	mu           sync.Mutex
	pending      []*pendingRecord
	pendingBytes int // sum of pending sizes
	flushing     bool
}

type pendingRecord struct {
	rec     recordbatch.Record
	size    int
	durable bool
	// done receives the result (or errLead) for a publisher that waits;
	// nil for a deferred record, whose result settles deferred.
	done     chan error
	deferred *deferredPublish
}

// finish settles the record. A deferred record's PUBACK is only marked
// ready here; the caller flushes the connections collected in acks once
// the whole batch is settled, so a connection with several records in the
// batch gets its PUBACKs in one write.
func (p *pendingRecord) finish(h *Hook, err error, acks *ackFlush) {
	if p.deferred != nil {
		p.deferred.settle(h, err, acks)
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

// append stores rec, returning once the batch holding it is written (and
// fsynced if durable). With d set the record is deferred: append returns at
// once unless this publisher has to lead, and d is settled with the result
// (exactly once, possibly before append returns).
func (w *partitionWriter) append(h *Hook, rec recordbatch.Record, durable bool, d *deferredPublish) error {
	p := &pendingRecord{rec: rec, size: len(rec.Key) + len(rec.Value) + 64, durable: durable, deferred: d}
	w.mu.Lock()
	if d == nil || len(w.pending) >= maxDeferred || w.pendingBytes >= maxDeferredBytes {
		p.done = make(chan error, 1)
	}
	w.pending = append(w.pending, p)
	w.pendingBytes += p.size
	if w.flushing {
		w.mu.Unlock()
		if p.done == nil {
			return nil // the leader writes it
		}
		if err := <-p.done; err != errLead {
			return err
		}
		w.mu.Lock() // we lead now; our record is still pending (at the head)
	} else {
		w.flushing = true
	}

	type written struct {
		batch []*pendingRecord
		err   error
	}
	var (
		batches   []written
		end       int64
		needsSync bool
		acks      ackFlush
	)
	for {
		batch := w.take()
		w.mu.Unlock()
		recs := make([]recordbatch.Record, len(batch))
		for i, q := range batch {
			recs[i] = q.rec
		}
		e, err := h.appendRecords(w, recs)
		if err == nil {
			end = e
		}
		// QoS 0 records are done once written; the others once fsynced.
		for _, q := range batch {
			if !q.durable {
				q.finish(h, err, &acks)
			} else if err == nil {
				needsSync = true
			}
		}
		batches = append(batches, written{batch, err})
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.flushing = false
			break
		}
		if w.pending[0].done != nil {
			w.pending[0].done <- errLead
			break
		}
		// Deferred records at the head have nobody waiting to write them.
	}
	w.mu.Unlock()

	var serr error
	if needsSync {
		if err := w.log.WaitSynced(h.ctx, end); err != nil {
			serr = fmt.Errorf("fsync %s: %w", w.name, err)
		}
	}
	for _, b := range batches {
		err := b.err
		if err == nil {
			err = serr
		}
		for _, q := range b.batch {
			if q.durable {
				q.finish(h, err, &acks)
			}
		}
	}
	acks.flush()
	if p.done == nil {
		return nil
	}
	return <-p.done
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
