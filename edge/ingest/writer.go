package ingest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
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
//   - the acker waits (WaitSynced) for the fsync covering the batches it
//     has, in order — under load it first gathers more of them, so that one
//     fsync covers many records (see gatherBusy and gatherPaced) — settles their
//     records and writes the PUBACKs that became ready, one write per
//     connection for all the batches the fsync covered.
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

	// free holds settled batches' arrays for pending to reuse (take),
	// so queueing does not grow a new array for every batch.
	free chan []*pendingRecord
	// batchBuf is where the writer goroutine builds each batch.
	batchBuf []byte
	// durableQueued counts the durable records queued and not yet handed
	// to the acker: batches that will reach it soon (see gatherBusy).
	durableQueued atomic.Int64
	// lastArrival is when the last durable record was queued (since
	// monoStart, in ns).
	lastArrival atomic.Int64
	// meanGap is a moving average of the time between durable records
	// queued (ns; see gatherPaced). It starts at maxGap: a new partition
	// is not busy.
	meanGap atomic.Int64
}

// pendingRecord is one publish from the hook to its settlement: the
// record, its place in the queue and how to answer it. One is taken from
// pendingPool per publish and holds everything the publish needs (its
// deferred answer, and the storage record builds the key and headers in),
// so a deferred publish allocates nothing of its own once the pool is warm.
type pendingRecord struct {
	rec     recordbatch.Record
	size    int
	durable bool
	// done receives the result for a publisher that waits; nil for a
	// deferred record, whose result settles deferred.
	done     chan error
	deferred *deferredPublish // nil, or &dp
	dp       deferredPublish

	// buf holds the record's key and its topic and device header values;
	// hdrs backs its headers when they fit. Both are reused.
	buf  []byte
	hdrs [8]recordbatch.RecordHeader
}

var pendingPool = sync.Pool{New: func() any { return new(pendingRecord) }}

// newPending takes an empty pendingRecord from the pool.
func newPending() *pendingRecord { return pendingPool.Get().(*pendingRecord) }

// maxPooledBuf bounds the key and header buffer a pooled record keeps (a
// long topic now and then must not pin its buffer for ever).
const maxPooledBuf = 1 << 10

// release returns p to the pool. Only the last holder may call it: the
// publisher that got its result from done, finish for a deferred record
// (nothing reads it after it is settled), or the hook for a publish never
// queued. Clearing it drops the payload and packet it referred to.
func (p *pendingRecord) release() {
	buf := p.buf[:0]
	if cap(buf) > maxPooledBuf {
		buf = nil
	}
	*p = pendingRecord{buf: buf}
	pendingPool.Put(p)
}

// finish settles the record. A deferred record's PUBACK is only marked
// ready here; the caller flushes the connections collected in acks once
// the whole batch is settled, so a connection with several records in the
// batch gets its PUBACKs in one write. A deferred record nobody waits for
// goes back to the pool: the caller must not touch it afterwards.
func (p *pendingRecord) finish(h *Hook, err error, acks *ackFlush, now time.Time) {
	if p.deferred != nil {
		p.deferred.settle(h, err, acks, now)
	}
	if p.done != nil {
		p.done <- err
		return
	}
	p.release()
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
	w := &partitionWriter{name: name, log: l, free: make(chan []*pendingRecord, 8)}
	w.work.L = &w.mu
	w.meanGap.Store(int64(maxGap))
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

// append queues p, whose record is built (p.deferred set for a deferred
// publish). A deferred record returns at once unless the partition's queue
// is full, and is settled with the result later. Otherwise append returns
// once the batch holding the record is written (and fsynced if durable),
// with the error if it could not be. Either way p is no longer the
// caller's.
func (w *partitionWriter) append(h *Hook, p *pendingRecord, durable bool) error {
	p.size = len(p.rec.Key) + len(p.rec.Value) + 64
	p.durable = durable
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		err := fmt.Errorf("append to %s: %w", w.name, errStopping)
		if p.deferred != nil {
			var acks ackFlush
			p.finish(h, err, &acks, h.now())
			acks.flush()
			return nil
		}
		p.release()
		return err
	}
	if p.deferred == nil || len(w.pending) >= maxDeferred || w.pendingBytes >= maxDeferredBytes {
		p.done = make(chan error, 1)
	}
	wait := p.done
	w.pending = append(w.pending, p)
	if durable {
		w.durableQueued.Add(1)
		w.arrived(time.Since(monoStart))
	}
	w.pendingBytes += p.size
	if len(w.pending) == 1 {
		w.work.Signal()
	}
	w.mu.Unlock()
	if wait == nil {
		return nil
	}
	err := <-wait
	p.release() // finish sent on done as its last use of p
	return err
}

// errStopping refuses appends after Drain (OnPublish refuses them before).
var errStopping = errors.New("ingest: writer stopped")

// write is the writer goroutine.
func (w *partitionWriter) write(h *Hook, written chan<- writtenBatch) {
	defer close(written)
	var (
		recs []recordbatch.Record // reused: the records of one batch
		acks ackFlush
	)
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

		for _, q := range batch {
			recs = append(recs, q.rec)
		}
		end, err := h.appendRecords(w, recs)
		clear(recs) // keep no payloads alive
		recs = recs[:0]
		// QoS 0 records are done once written; the others once fsynced.
		// Only those go on to the acker: a finished record may already be
		// back in the pool.
		durable := batch[:0]
		now := h.now()
		for _, q := range batch {
			if q.durable {
				durable = append(durable, q)
			} else {
				q.finish(h, err, &acks, now)
			}
		}
		clear(batch[len(durable):])
		acks.flush()
		if len(durable) > 0 {
			// Counted off before the hand-over: an acker that sees 0
			// after taking this batch is not waiting for it.
			w.durableQueued.Add(-int64(len(durable)))
			written <- writtenBatch{recs: durable, end: end, err: err}
		} else {
			w.recycle(batch)
		}
	}
}

// Gathering batches for one fsync. An fsync costs the edge a fixed
// ~80-100 µs of CPU on the development VM however much it covers (and
// ~200-400 µs of waiting), so under load a partition that fsyncs as soon as
// each batch is written spends more CPU syncing than ingesting: 3,500
// fsyncs/s of ~50 publishes each at 180k msgs/s. When a partition syncs
// both often and much (its last fsync covered gatherBusy records or more
// and began less than gatherRecent ago) the acker gathers the batches that
// keep coming before it leads the next fsync: until gatherTarget records,
// syncGather after the first batch, or the partition goes quiet (nothing
// queued and nothing arrived for gatherQuiet: devices that wait for these
// PUBACKs send nothing more). A lightly loaded gateway (one or two records
// per fsync) syncs each batch at once, unless its records come fast
// (gatherPaced); so does one whose fsyncs are already far apart (a
// CPU-starved machine: there each wait for a timer costs a scheduling
// delay, and fsyncs are already rare).
const (
	gatherBusy   = maxUnacked
	gatherRecent = 5 * time.Millisecond
	gatherTarget = maxBatchRecords
	syncGather   = 2 * time.Millisecond
	gatherQuiet  = 100 * time.Microsecond
)

// Pacing a busy partition's fsyncs. Devices that each wait for their
// PUBACK before the next reading (QoS 1, one in flight) never add up to
// gatherBusy records per fsync: 1,000 such devices at 10 readings/s over a
// stream's 4 partitions made ~2,250 fsyncs/s of ~4 readings each on the
// development VM. Those fsyncs alone took a tenth of its two cores, and
// each held a scheduler slot of the edge while it waited for the disk; the
// devices' read loops queued behind them, so that readings waited tens of
// milliseconds before the edge even read them (p99 device → core 100-300
// ms). So a partition whose durable records arrive at least gatherPacedMin
// per gatherPaced on average (the moving average of the gaps between them,
// meanGap, is at most gatherPaced/gatherPacedMin) leads an fsync at most
// every gatherPaced: until gatherPaced has passed since the last one, the
// acker gathers the batches that keep coming, unless the partition goes
// quiet (nothing queued, nothing arrived for 4 mean gaps). At 2,500
// records/s per partition that is 125 fsyncs/s of ~20 records, for at most
// gatherPaced more latency. A partition slower than that (100 devices at 10
// readings/s: 250 records/s on each of 4 partitions) syncs each batch at
// once; so does one whose disk is slower than gatherPaced (an SD card's
// fsyncs are already far apart and cover many records each).
const (
	gatherPaced    = 8 * time.Millisecond
	gatherPacedMin = 8
	maxGap         = time.Second
)

// arrived records a durable record queued at now (since monoStart; mu held).
func (w *partitionWriter) arrived(now time.Duration) {
	gap := min(now-time.Duration(w.lastArrival.Swap(int64(now))), maxGap)
	mean := time.Duration(w.meanGap.Load())
	w.meanGap.Store(int64(mean + (gap-mean)/8))
}

// gatherUntil says whether the acker, having taken its first batch at
// start, should gather more before it leads the next fsync: until when at
// most, and after how long without a new record it stops early (see
// gatherBusy and gatherPaced). last is how many records the previous fsync
// covered and lastSync when the acker began waiting for it.
func (w *partitionWriter) gatherUntil(start, lastSync time.Duration, last int) (until, quiet time.Duration, busy bool) {
	if last >= gatherBusy && start-lastSync < gatherRecent {
		return start + syncGather, gatherQuiet, true
	}
	mean := time.Duration(w.meanGap.Load())
	if mean*gatherPacedMin <= gatherPaced && start-lastSync < gatherPaced {
		return lastSync + gatherPaced, max(gatherQuiet, 4*mean), true
	}
	return 0, 0, false
}

// monoStart anchors the monotonic clock readings in lastArrival.
var monoStart = time.Now()

// ack is the acker goroutine: it gathers written batches (see gatherBusy),
// waits for the one fsync covering them, settles their records and writes
// the PUBACKs that became ready, one write per connection.
func (w *partitionWriter) ack(h *Hook, written <-chan writtenBatch) {
	var (
		acks     ackFlush
		group    []writtenBatch
		timer    *time.Timer
		last     int           // records the last fsync covered
		lastSync time.Duration // when the acker last waited for an fsync (since monoStart)
	)
	for b := range written {
		group = append(group[:0], b)
		n := len(b.recs)
		start := time.Since(monoStart)
		deadline, quiet, busy := w.gatherUntil(start, lastSync, last)
	gather:
		for busy && n < gatherTarget {
			select {
			case next, ok := <-written:
				if !ok {
					break gather
				}
				group, n = append(group, next), n+len(next.recs)
				continue
			default:
			}
			now := time.Since(monoStart)
			until := min(deadline, time.Duration(w.lastArrival.Load())+quiet)
			if w.durableQueued.Load() > 0 {
				until = deadline // the writer is building the next batch
			}
			if now >= until {
				break
			}
			if timer == nil {
				timer = time.NewTimer(until - now)
			} else {
				timer.Reset(until - now)
			}
			select {
			case next, ok := <-written:
				timer.Stop()
				if !ok {
					break gather
				}
				group, n = append(group, next), n+len(next.recs)
			case <-timer.C:
			}
		}
		lastSync, last = time.Since(monoStart), n
		w.settle(h, group, &acks)
		acks.flush()
		clear(group)
	}
}

// settle waits for the fsync covering the batches of group that were
// written and settles their records.
func (w *partitionWriter) settle(h *Hook, group []writtenBatch, acks *ackFlush) {
	end := int64(-1)
	for _, b := range group {
		if b.err == nil {
			end = max(end, b.end)
		}
	}
	var serr error
	if end >= 0 {
		if err := w.log.WaitSynced(h.ctx, end); err != nil {
			serr = fmt.Errorf("fsync %s: %w", w.name, err)
		}
	}
	now := h.now()
	for _, b := range group {
		err := b.err
		if err == nil {
			err = serr
		}
		for _, q := range b.recs {
			q.finish(h, err, acks, now)
		}
		w.recycle(b.recs)
	}
}

// take removes up to one batch's worth of records from pending (mu held).
// The batch keeps pending's array (the records after it are copied out, so
// the whole array is the batch's); pending goes on in a recycled one.
func (w *partitionWriter) take() []*pendingRecord {
	n, bytes := 0, 0
	for n < len(w.pending) && n < maxBatchRecords && (n == 0 || bytes+w.pending[n].size <= maxBatchBytes) {
		bytes += w.pending[n].size
		n++
	}
	w.pendingBytes -= bytes
	batch := w.pending[:n]
	var next []*pendingRecord
	select {
	case next = <-w.free:
	default:
	}
	w.pending = append(next, w.pending[n:]...)
	return batch
}

// recycle offers a batch's array for take to reuse once its records are
// settled.
func (w *partitionWriter) recycle(batch []*pendingRecord) {
	if cap(batch) > maxDeferred { // grown by a burst: let it go
		return
	}
	clear(batch[:cap(batch)])
	select {
	case w.free <- batch[:0]:
	default:
	}
}

// maxKeptBatchBuf bounds the batch buffer a partition writer keeps between
// batches: the largest batches (maxBatchBytes) are built in a buffer of
// their own, which the collector takes back.
const maxKeptBatchBuf = 256 << 10

// appendRecords writes recs as one batch and returns the offset after it.
// The batch is built in the writer's buffer (only the writer goroutine calls
// this), which the log does not keep once Append returns.
func (h *Hook) appendRecords(w *partitionWriter, recs []recordbatch.Record) (int64, error) {
	b, err := recordbatch.AppendBuild(w.batchBuf[:0], recs, recordbatch.NoProducer)
	if err != nil {
		return 0, fmt.Errorf("build batch for %s: %w", w.name, err)
	}
	if cap(b) <= maxKeptBatchBuf {
		w.batchBuf = b[:0]
	}
	res, err := h.appendBatch(w.log, h.ctx, b, storage.AppendOptions{LeaderEpoch: -1})
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", w.name, err)
	}
	return res.LastOffset + 1, nil
}
