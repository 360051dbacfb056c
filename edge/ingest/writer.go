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
// it takes everything pending, writes it as one batch, hands the role to the
// oldest publisher still waiting (if any), and only then waits (WaitSynced)
// for an fsync covering the batch if it holds QoS 1/2 records — so the next
// batch is written while the disk syncs, and the log's sync loop covers
// both with one fsync. There
// is no background goroutine, and a connection's publishes keep their order
// (mochi hands us one publish per connection at a time).
type partitionWriter struct {
	name string
	log  *storage.Log

	mu       sync.Mutex
	pending  []*pendingRecord
	flushing bool
}

type pendingRecord struct {
	rec     recordbatch.Record
	size    int
	durable bool
	done    chan error // buffered 1: the result, or errLead
}

// append stores rec, returning once the batch holding it is written (and
// fsynced if durable).
func (w *partitionWriter) append(h *Hook, rec recordbatch.Record, durable bool) error {
	p := &pendingRecord{rec: rec, size: len(rec.Key) + len(rec.Value) + 64, durable: durable, done: make(chan error, 1)}
	w.mu.Lock()
	w.pending = append(w.pending, p)
	if w.flushing {
		w.mu.Unlock()
		if err := <-p.done; err != errLead {
			return err
		}
		w.mu.Lock() // we lead now; our record is still pending
	} else {
		w.flushing = true
	}
	batch := w.take()
	w.mu.Unlock()

	recs := make([]recordbatch.Record, len(batch))
	durableBatch := false
	for i, q := range batch {
		recs[i] = q.rec
		durableBatch = durableBatch || q.durable
	}
	end, err := h.appendRecords(w, recs)

	w.mu.Lock()
	if len(w.pending) > 0 {
		w.pending[0].done <- errLead
	} else {
		w.flushing = false
	}
	w.mu.Unlock()

	// QoS 0 records are done once written; the others once fsynced.
	for _, q := range batch {
		if !q.durable {
			q.done <- err
		}
	}
	if err == nil && durableBatch {
		if serr := w.log.WaitSynced(h.ctx, end); serr != nil {
			err = fmt.Errorf("fsync %s: %w", w.name, serr)
		}
	}
	for _, q := range batch {
		if q.durable {
			q.done <- err
		}
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
