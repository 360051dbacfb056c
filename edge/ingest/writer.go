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
// RecordBatch and one Log.Append. Whoever finds no append in progress leads:
// it takes everything pending, appends it as one batch, hands the role to
// the oldest publisher still waiting (if any) and returns. So there is no
// background goroutine, a connection's publishes keep their order, and the
// write syscalls (and, with group commit, the fsyncs) are shared.
type partitionWriter struct {
	name string
	log  *storage.Log

	mu       sync.Mutex
	pending  []*pendingRecord
	spare    []*pendingRecord
	flushing bool
}

type pendingRecord struct {
	rec     recordbatch.Record
	size    int
	durable bool
	err     error
	done    chan error // buffered 1: the result, or errLead
}

// append stores rec, returning once the batch holding it is appended (and
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

	h.flush(w, batch)

	clear(batch) // let the records go before the slice is reused
	w.mu.Lock()
	w.spare = batch[:0]
	if len(w.pending) > 0 {
		w.pending[0].done <- errLead
	} else {
		w.flushing = false
	}
	w.mu.Unlock()
	return p.err
}

// take removes up to one batch's worth of records from pending (mu held).
func (w *partitionWriter) take() []*pendingRecord {
	n, bytes := 0, 0
	for n < len(w.pending) && n < maxBatchRecords && (n == 0 || bytes+w.pending[n].size <= maxBatchBytes) {
		bytes += w.pending[n].size
		n++
	}
	batch := w.pending[:n:n]
	rest := w.pending[n:]
	if len(rest) == 0 {
		w.pending = w.spare[:0]
	} else {
		w.pending = append(w.spare[:0], rest...)
	}
	w.spare = nil
	return batch
}

// flush appends one combined batch and delivers each record's result; the
// leader's own record is among them and reads its result from p.err.
func (h *Hook) flush(w *partitionWriter, batch []*pendingRecord) {
	recs := make([]recordbatch.Record, len(batch))
	durable := false
	for i, p := range batch {
		recs[i] = p.rec
		durable = durable || p.durable
	}
	err := h.appendRecords(w, recs, durable)
	for _, p := range batch {
		p.err = err
		p.done <- err
	}
}

func (h *Hook) appendRecords(w *partitionWriter, recs []recordbatch.Record, durable bool) error {
	b, err := recordbatch.Build(recs, recordbatch.NoProducer)
	if err != nil {
		return fmt.Errorf("build batch for %s: %w", w.name, err)
	}
	if _, err := h.appendBatch(w.log, h.ctx, b, storage.AppendOptions{Durable: durable, LeaderEpoch: -1}); err != nil {
		return fmt.Errorf("append to %s: %w", w.name, err)
	}
	return nil
}
