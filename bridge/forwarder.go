package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// edgeLog is the edge partition log a forwarder reads: a tail it follows
// and whose retention it holds at its cursor.
type edgeLog interface {
	storage.LogTail
	SetRetentionFloor(floor int64)
}

// forwarder carries one edge partition to the core.
type forwarder struct {
	b         *Bridge
	stream    string
	partition int32
	coreTopic string
	log       edgeLog
	pid       int64 // producer id on the core; -1 for a foreign Kafka
	cursorKey string
	logger    *slog.Logger

	// maxBatch shrinks when the core answers MESSAGE_TOO_LARGE.
	maxBatch int

	// pinned is the core partition this edge partition goes to, saved
	// before its first batch (-1: none yet). It belongs to run's goroutine.
	pinned int32

	mu            sync.Mutex
	cursor        int64 // acknowledged by the core and saved (see saveCursor)
	corePartition int32
	lastAck       time.Time
	progress      time.Time // last ack, or when the partition was last caught up
	dropped       int64
	skippedTo     int64 // drops below this are counted
	tooLarge      int64
	// epoch is the producer epoch of forwarded batches. The core refuses a
	// gap in edge sequences unless it comes with a newer epoch, so a batch it
	// refused can never be overtaken by a later one; the bridge bumps the
	// epoch (saved first) whenever it skips records on purpose. It belongs
	// to run's goroutine.
	epoch            int16
	epochUnconfirmed bool
	// epochLow is the lowest edge offset sent under epoch (MaxInt64: none
	// yet; MinInt64: not known, after a restart). Crossing a declared gap
	// needs an epoch the core has not seen below it, so a session that
	// re-sent records before the gap under this epoch bumps it again.
	epochLow int64
	retries  int64
	lastErr  string
}

func newForwarder(b *Bridge, stream string, partition int32, l edgeLog) (*forwarder, error) {
	f := &forwarder{
		b:             b,
		stream:        stream,
		partition:     partition,
		coreTopic:     b.cfg.TopicPrefix + stream,
		log:           l,
		pid:           -1,
		cursorKey:     CursorName(stream, partition),
		logger:        b.logger.With("stream", stream, "partition", partition),
		maxBatch:      b.cfg.MaxBatchBytes,
		corePartition: -1,
		pinned:        -1,
		progress:      time.Now(),
	}
	if b.cfg.Target == TargetTributary {
		f.pid = forwarded.ProducerID(b.source(), partition)
	}
	// Every stream's counters exist from the start at 0, so rate() and
	// increase() see the first event and alerts on losses can be written.
	for _, c := range []*prometheus.CounterVec{b.m.records, b.m.bytes, b.m.skipped, b.m.gaps, b.m.tooLarge, b.m.rewound, b.m.corrupt} {
		c.WithLabelValues(stream)
	}
	cur, ok, err := b.store.Cursor(f.cursorKey)
	if err != nil {
		return nil, fmt.Errorf("read cursor %s: %w", f.cursorKey, err)
	}
	if !ok {
		// Born under the bridge's retention hold (see holdRetention): any
		// record this log no longer holds was dropped unforwarded.
		cur = 0
	}
	if end := l.NextOffset(); cur > end {
		// The log lost records the core already has (a torn tail cut at
		// recovery). New records will reuse those offsets, and the core
		// would drop them as re-sends: say so loudly.
		f.logger.Error("bridge cursor is past the edge log end; records appended at offsets below the cursor will be treated as already forwarded",
			"cursor", cur, "log_end", end)
	}
	f.cursor = cur
	// Until the core takes a batch from this run, send one at a time: the
	// epoch may have been bumped just before a restart.
	f.epochUnconfirmed = f.pid >= 0
	f.epochLow = math.MinInt64
	if f.pid >= 0 {
		v, err := b.store.Value(f.epochKey())
		switch {
		case err == nil && len(v) == 2:
			f.epoch = int16(binary.BigEndian.Uint16(v))
		case err != nil && !errors.Is(err, meta.ErrNotFound):
			return nil, fmt.Errorf("read bridge epoch: %w", err)
		}
	}
	switch v, err := b.store.Value(f.pinKey()); {
	case err == nil && len(v) == 4:
		f.pinned = int32(binary.BigEndian.Uint32(v))
	case err != nil && !errors.Is(err, meta.ErrNotFound):
		return nil, fmt.Errorf("read bridge core partition: %w", err)
	}
	l.SetRetentionFloor(cur)
	return f, nil
}

func (f *forwarder) epochKey() string { return "bridge-epoch/" + f.cursorKey }

// bumpEpoch moves to the next producer epoch, saved before any batch uses it
// so a restarted bridge never goes back to an older one.
func (f *forwarder) bumpEpoch() error {
	next := f.epoch + 1
	if next < 0 {
		next = 1 // int16 wrapped after 32767 declared gaps: start over above 0
	}
	if err := f.b.store.PutValue(f.epochKey(), binary.BigEndian.AppendUint16(nil, uint16(next))); err != nil {
		return fmt.Errorf("save bridge epoch: %w", err)
	}
	f.epoch = next
	f.epochUnconfirmed = true
	f.epochLow = math.MaxInt64
	f.logger.Info("declaring skipped edge records to the core with a new producer epoch", "epoch", next)
	return nil
}

// eagerInFlight is how many requests may be in flight for the forwarder to
// still send records as soon as the edge fsyncs them; beyond it (up to
// max_in_flight, which a backlog fills) it waits for an acknowledgement.
const eagerInFlight = 2

// errRewind ends a session on purpose so that the batches in flight, built
// before a skip, are sent again under the new epoch.
var errRewind = errors.New("rewind after skipping records")

// inFlightLimit is 1 while the core has not yet accepted a batch of the
// current epoch: the first batch of an epoch is the one allowed to jump a
// gap, so nothing may overtake it if the core refuses it.
func (f *forwarder) inFlightLimit() int {
	if f.epochUnconfirmed {
		return 1
	}
	return f.b.cfg.MaxInFlight
}

func (f *forwarder) status(now time.Time) PartitionStatus {
	ps := f.statusLocked(now)
	if ps.BacklogRecords > 0 {
		// Read outside the lock: a disk read must not stall the forwarder.
		if ts, ok := oldestTimestamp(f.log, max(ps.Cursor, ps.LogStart)); ok {
			ps.OldestUnforwarded = ts
			ps.OldestUnforwardedAge = max(0, now.Sub(ts))
		}
	}
	return ps
}

// oldestTimestamp is the first timestamp of the batch holding offset: the
// record time (device time, or receive time when the device sent none) of
// the oldest record not yet forwarded.
func oldestTimestamp(l storage.LogTail, offset int64) (time.Time, bool) {
	b, err := l.Read(offset, 1, -1)
	if err != nil || len(b) == 0 {
		return time.Time{}, false
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(h.FirstTimestamp), true
}

func (f *forwarder) statusLocked(now time.Time) PartitionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	start, end := f.log.StartOffset(), f.log.NextOffset()
	ps := PartitionStatus{
		Stream: f.stream, Partition: f.partition, CoreTopic: f.coreTopic, CorePartition: f.corePartition,
		Cursor: f.cursor, LogStart: start, LogEnd: end, LastAck: f.lastAck,
		Dropped: f.dropped, TooLarge: f.tooLarge, Retries: f.retries, LastError: f.lastErr,
	}
	if from := max(f.cursor, start); end > from {
		ps.BacklogRecords = end - from
		if end > start {
			ps.BacklogBytes = f.log.Size() * ps.BacklogRecords / (end - start)
		}
		ps.LastAckAge = now.Sub(f.progress)
	}
	return ps
}

// run forwards until ctx ends, backing off after each failed session.
func (f *forwarder) run(ctx context.Context) {
	bo := backoff{min: f.b.cfg.BackoffMin, max: f.b.cfg.BackoffMax}
	session := f.session
	if f.b.cfg.ExactlyOnce {
		session = f.txnSession // exactly once into any Kafka (txnforward.go)
	}
	for ctx.Err() == nil {
		progressed, err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errRewind) || errors.Is(err, errLeaderMoved) {
			continue // on purpose: start again at once
		}
		if progressed {
			bo.reset()
		}
		wait := bo.next()
		reason := classify(err)
		f.b.m.retries.WithLabelValues(f.stream, reason).Inc()
		f.mu.Lock()
		f.retries++
		f.lastErr = err.Error()
		f.mu.Unlock()
		lvl := slog.LevelWarn
		if bo.failures > 3 {
			lvl = slog.LevelDebug // an outage: said once, then quietly retried
		}
		f.logger.Log(ctx, lvl, "forwarding interrupted; retrying", "reason", reason, "err", err, "retry_in", wait.Round(time.Millisecond))
		tick.Sleep(ctx, wait)
	}
}

func classify(err error) string {
	var ke *kerr.Error
	var ne net.Error
	switch {
	case errors.As(err, &ke):
		return "broker_error"
	case errors.Is(err, errMetadata):
		return "metadata"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	default:
		return "network"
	}
}

var errMetadata = errors.New("core metadata")

// inflight is one produce request awaiting its acknowledgement.
type inflight struct {
	next    int64 // edge offset after the batch's last record
	records int
	bytes   int
	epoch   int16 // the producer epoch it was sent under
}

// session looks up the leader, connects and forwards until an error. It
// starts at the saved cursor every time: re-sending what the core may
// already have is safe, skipping is not.
func (f *forwarder) session(ctx context.Context) (progressed bool, err error) {
	ct, cp, err := f.target(ctx)
	if err != nil {
		return false, err
	}
	addr, ok := ct.leaders[cp]
	if !ok {
		return false, fmt.Errorf("%w: %s/%d has no leader", errMetadata, f.coreTopic, cp)
	}
	f.mu.Lock()
	f.corePartition = cp
	next := f.cursor
	f.mu.Unlock()

	conn, err := dialProduce(ctx, addr, f.b.cfg.RequestTimeout, "tributary-bridge-"+f.b.edgeID, f.b.sec)
	if err != nil {
		return false, err
	}
	defer conn.close()
	var moved atomic.Bool
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		f.watchLeader(watchCtx, conn, cp, addr, &moved)
	}()
	defer func() { stopWatch(); <-watchDone }()
	defer func() {
		if err != nil && moved.Load() {
			err = fmt.Errorf("%w: %w", errLeaderMoved, err)
		}
	}()

	var queue []inflight
	// acked is how far the core has acknowledged; the cursor is saved from
	// it at most every cursorSaveEvery while batches flow, when the
	// partition goes idle, and when the session ends (unless it rewound the
	// cursor on purpose).
	acked, saved, rewound := next, time.Now(), false
	defer func() {
		if rewound || acked <= f.savedCursor() {
			return
		}
		if serr := f.saveCursor(acked); serr != nil && err == nil {
			err = serr
		}
	}()
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		// Taken before reading offsets: no append or fsync is missed.
		changed, synced := f.log.Changed(), f.log.Synced()
		// Fill the pipeline with what is fsynced on the edge: a record
		// that a power cut could still take back must not reach the core,
		// or the edge would later reuse its offset for another record.
		for conn.inFlight() < f.inFlightLimit() {
			epoch := f.epoch
			raw, at, err := f.readFrom(next)
			if err != nil {
				return progressed, err
			}
			next = at
			if raw == nil {
				break
			}
			if f.epoch != epoch && len(queue) > 0 {
				// readFrom stepped over a gap under a new epoch while
				// batches of the old one are in flight. The first batch
				// past the gap may jump it, so it waits until they are
				// all accepted: were one refused, it would overtake it.
				break
			}
			batch, n, after, err := f.encode(raw, next)
			if err != nil {
				return progressed, err
			}
			if n == 0 {
				next = after // only control batches or records below next
				continue
			}
			if err := f.b.bucket.wait(ctx, len(batch)); err != nil {
				return progressed, err
			}
			if err := conn.send(f.produceRequest(cp, batch)); err != nil {
				return progressed, err
			}
			queue = append(queue, inflight{next: after, records: n, bytes: len(batch), epoch: f.epoch})
			f.epochLow = min(f.epochLow, next)
			next = after
		}
		if len(queue) == 0 {
			// Nothing in flight: the cursor may trail next only because
			// the records between were dropped on the edge.
			acked = next
			f.caughtUp()
			wake, wait := f.wakeFor(next, changed, synced)
			if acked > f.savedCursor() {
				if due := cursorSaveEvery - time.Since(saved); due > 0 {
					wait = min(wait, due) // save it then, unless records come first
				} else {
					if err := f.saveCursor(acked); err != nil {
						return progressed, err
					}
					saved = time.Now()
				}
			}
			idle.Reset(wait)
			select {
			case <-ctx.Done():
				return progressed, ctx.Err()
			case <-wake:
			case <-idle.C:
			}
			continue
		}
		// Wait for the oldest acknowledgement or, with a single request
		// in flight, for the edge's next fsync: its records go out at once
		// and wait at the core rather than behind that acknowledgement.
		// With more in flight new records wait for an acknowledgement and
		// go together: a fsync group per request cost the brokers a
		// quarter more CPU per reading at 10k readings/s on RF=3 (each
		// request is replicated), on a machine short of CPU.
		var more <-chan struct{}
		if conn.inFlight() < min(eagerInFlight, f.inFlightLimit()) {
			more = synced
		}
		resp, err := conn.receiveOr(more)
		if err != nil {
			return progressed, err
		}
		if resp == nil {
			continue // fsynced on the edge: fill the pipeline
		}
		err = f.check(resp, cp)
		if errors.Is(err, kerr.MessageTooLarge) && queue[0].records == 1 {
			// One record the core will never take: waiting would stall
			// the partition forever, so it is skipped, counted and logged.
			f.b.m.tooLarge.WithLabelValues(f.stream).Inc()
			f.mu.Lock()
			f.tooLarge++
			f.mu.Unlock()
			f.logger.Error("core refuses a record as too large; skipping it", "edge_offset", queue[0].next-1, "err", err)
			queue[0].records, queue[0].bytes = 0, 0
			if err := f.bumpEpoch(); err != nil {
				return progressed, err
			}
			f.ack(queue[0])
			acked = queue[0].next // saved on the way out, before the rewind
			return true, errRewind
		} else if err != nil {
			f.detectGap(conn, cp, queue)
			if errors.Is(err, kerr.OutOfOrderSequenceNumber) && f.pid >= 0 {
				// What this session saw acknowledged is saved first:
				// the rewind compares the core's end with the cursor.
				if serr := f.saveCursor(acked); serr != nil {
					return progressed, serr
				}
				if ok, herr := f.rewindToCore(ctx, cp); herr != nil {
					f.logger.Warn("cannot ask the core where its copy of this partition ends", "err", herr)
				} else if ok {
					rewound = true
					return progressed, errRewind
				}
			}
			return progressed, err
		}
		f.ack(queue[0])
		acked = queue[0].next
		if time.Since(saved) >= cursorSaveEvery {
			if err := f.saveCursor(acked); err != nil {
				return progressed, err
			}
			saved = time.Now()
		}
		if queue[0].records > 0 && queue[0].epoch == f.epoch {
			f.epochUnconfirmed = false
		}
		queue = queue[1:]
		progressed = true
	}
}

func (f *forwarder) pinKey() string { return "bridge-core-partition/" + f.cursorKey }

// target describes the core topic (creating it when missing) and picks the
// core partition of this edge partition: the one it was first sent to, for
// as long as the topic has it. Were it picked from the partition count
// alone, a topic that gained partitions would take this partition's
// re-sends (the cursor trails the acknowledgements) in a partition without
// its producer state, storing them twice, and split its devices' order
// across two partitions.
func (f *forwarder) target(ctx context.Context) (coreTopic, int32, error) {
	info, ok := f.b.topics.Get(f.stream)
	if !ok {
		<-ctx.Done() // the stream was deleted on the edge; nothing left to do
		return coreTopic{}, 0, ctx.Err()
	}
	ct, err := f.b.admin.ensure(ctx, f.coreTopic, info.Partitions)
	if err != nil {
		return coreTopic{}, 0, fmt.Errorf("%w: %w", errMetadata, err)
	}
	if f.pinned >= 0 && f.pinned < ct.partitions {
		return ct, f.pinned, nil
	}
	cp := f.partition % ct.partitions
	if f.pinned >= 0 {
		f.logger.Warn("the core topic no longer has the partition this edge partition was sent to (re-created smaller?); moving it",
			"core_topic", f.coreTopic, "was", f.pinned, "now", cp, "partitions", ct.partitions)
	}
	if err := f.b.store.PutValue(f.pinKey(), binary.BigEndian.AppendUint32(nil, uint32(cp))); err != nil {
		return coreTopic{}, 0, fmt.Errorf("save bridge core partition: %w", err)
	}
	f.pinned = cp
	return ct, cp, nil
}

// readFrom reads the fsynced edge batches from next on (at most maxBatch
// bytes), stepping over records the edge deleted or lost to corruption
// (declared, counted and logged); at is where the batches start. raw is nil
// when nothing fsynced is left to read.
func (f *forwarder) readFrom(next int64) (raw []byte, at int64, err error) {
	for {
		if start := f.log.StartOffset(); next < start {
			if err := f.skip(next, start); err != nil {
				return nil, next, err
			}
			next = start
		}
		upTo := f.log.SyncedOffset()
		if next >= upTo {
			return nil, next, nil
		}
		raw, err := f.log.Read(next, f.maxBatch, upTo)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			continue // retention or drop-oldest moved the start; re-check
		}
		var corrupt *storage.CorruptError
		if errors.As(err, &corrupt) {
			// Retrying would stall the partition for ever: what the
			// disk lost is declared lost, and forwarding goes on.
			if err := f.skipCorrupt(next, corrupt); err != nil {
				return nil, next, err
			}
			next = max(next, corrupt.To)
			continue
		}
		if err != nil {
			return nil, next, fmt.Errorf("read edge log at %d: %w", next, err)
		}
		if len(raw) == 0 {
			return nil, next, nil
		}
		return raw, next, nil
	}
}

// idle waits, with nothing in flight, until records past next may be
// readable: changed and synced were taken before the last read.
func (f *forwarder) idle(ctx context.Context, next int64, changed, synced <-chan struct{}, timer *time.Timer) error {
	f.caughtUp()
	if next > f.savedCursor() {
		// The records between were dropped on the edge.
		if err := f.saveCursor(next); err != nil {
			return err
		}
	}
	wake, wait := f.wakeFor(next, changed, synced)
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
	case <-timer.C:
	}
	return nil
}

// wakeFor is what a caught-up forwarder at next waits on, and for how long
// at most: the next append (changed), or, when records past next are
// appended but not yet fsynced, the fsync that covers them (synced; not
// every append while ingest is busy), with SyncPoll as a safety net.
// changed and synced were taken before the last read.
func (f *forwarder) wakeFor(next int64, changed, synced <-chan struct{}) (<-chan struct{}, time.Duration) {
	if f.log.NextOffset() > next {
		return synced, f.b.cfg.SyncPoll
	}
	return changed, time.Hour
}

// detectGap reads the responses still pending after batch queue[0] was
// refused. The core refuses a gap in sequences that is not declared with a
// newer epoch, so a later pipelined batch should be refused too; if one was
// accepted anyway (an older core), the refused records can no longer reach
// the core. That cannot be repaired from here; it is counted and logged so it
// is never silent.
func (f *forwarder) detectGap(conn *produceConn, cp int32, queue []inflight) {
	lost := int64(queue[0].records)
	for i := 1; i < len(queue) && conn.inFlight() > 0; i++ {
		resp, err := conn.receive()
		if err != nil {
			return
		}
		if f.check(resp, cp) == nil {
			f.b.m.gaps.WithLabelValues(f.stream).Add(float64(lost))
			f.logger.Error("core accepted a batch after refusing an earlier one; the refused records are skipped on the core",
				"records", lost, "first_edge_offset", queue[0].next-int64(queue[0].records))
			return
		}
		lost += int64(queue[i].records)
	}
}

// rewindToCore handles the core refusing the next edge sequence as out of
// order: the core's copy ends before the cursor (it lost a torn tail in a
// crash, or was restored from an older disk), so every batch from the cursor
// on would be refused for ever. It asks the core for the last sequence it
// holds of this edge partition and moves the cursor back to the record after
// it. If the edge still has those records they are re-sent; if retention has
// removed them, the session's skip declares them lost under a new epoch,
// counted and logged.
func (f *forwarder) rewindToCore(ctx context.Context, cp int32) (bool, error) {
	last, found, err := f.b.admin.lastSequence(ctx, f.coreTopic, cp, f.pid)
	if err != nil || !found {
		return false, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d := storage.SequenceDistance(forwarded.Sequence(f.cursor), last) + 1
	if d >= 0 {
		return false, nil // the core is not behind the cursor: a plain retry
	}
	resume := f.cursor + d
	if err := f.b.store.PutCursor(f.cursorKey, resume); err != nil {
		return false, fmt.Errorf("save cursor %s: %w", f.cursorKey, err)
	}
	f.log.SetRetentionFloor(resume)
	f.b.m.rewound.WithLabelValues(f.stream).Add(float64(-d))
	f.logger.Warn("the core holds less of this partition than it acknowledged; re-sending from where its copy ends",
		"core_partition", cp, "cursor", f.cursor, "resume_at", resume, "records", -d)
	f.cursor = resume
	return true, nil
}

// errLeaderMoved ends a session whose requests waited on a broker that is
// no longer the partition's leader.
var errLeaderMoved = errors.New("partition leader moved")

// Leader watch: a request unanswered for stallAfter makes the forwarder ask
// the core (every leaderCheck) who leads the partition now.
const (
	stallAfter  = 500 * time.Millisecond
	leaderCheck = 250 * time.Millisecond
)

// watchLeader follows leadership while requests wait. A leader that is
// frozen rather than dead (SIGSTOP, a hung disk) keeps its connections open
// and never answers, so without this the session waited out the request
// timeout (35 s by default) although the cluster had elected a new leader
// within seconds. When the partition's leader is no longer addr it closes
// the connection, which ends the session, and the next session goes to the
// new leader at once; what was in flight is re-sent and deduplicated by the
// core.
func (f *forwarder) watchLeader(ctx context.Context, conn *produceConn, cp int32, addr string, moved *atomic.Bool) {
	for range tick.Every(ctx, leaderCheck) {
		waited := conn.stalledFor(time.Now())
		if waited < stallAfter {
			continue
		}
		ct, err := f.b.admin.describe(ctx, f.coreTopic)
		if err != nil {
			continue
		}
		if leader, ok := ct.leaders[cp]; ok && leader != addr {
			moved.Store(true)
			f.logger.Warn("partition leader moved while a request waited; re-routing to the new leader",
				"core_partition", cp, "old_leader", addr, "new_leader", leader, "waited", waited.Round(time.Millisecond))
			_ = conn.nc.Close()
			return
		}
	}
}

// caughtUp is called with nothing in flight.
func (f *forwarder) caughtUp() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.progress = time.Now()
}

// cursorSaveEvery bounds how often a busy forwarder saves its cursor. A
// save is a bbolt transaction and its fsync; saving after every
// acknowledgement (hundreds a second at 10k readings/s) kept the forwarder
// from sending while it waited for meta.db's fsync. A cursor that trails
// the acknowledgements only means a re-send after a crash, which the core
// drops as duplicates (target tributary), and the edge log's retention
// floor is the saved cursor, so nothing a restart needs is deleted.
const cursorSaveEvery = 100 * time.Millisecond

// saveCursor saves the cursor at to, which becomes the edge log's
// retention floor.
func (f *forwarder) saveCursor(to int64) error {
	if err := f.b.store.PutCursor(f.cursorKey, to); err != nil {
		return fmt.Errorf("save cursor %s: %w", f.cursorKey, err)
	}
	f.mu.Lock()
	f.cursor = to
	f.mu.Unlock()
	f.log.SetRetentionFloor(to)
	return nil
}

func (f *forwarder) savedCursor() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cursor
}

// skip accounts for records [from, to) that the edge deleted unforwarded;
// a session that rewinds over the same hole does not count it twice.
func (f *forwarder) skip(from, to int64) error {
	f.mu.Lock()
	n := to - max(from, f.skippedTo)
	f.skippedTo = max(f.skippedTo, to)
	if n > 0 {
		f.dropped += n
	}
	f.mu.Unlock()
	if n > 0 {
		f.b.m.skipped.WithLabelValues(f.stream).Add(float64(n))
		f.logger.Warn("records dropped on the edge before they were forwarded", "records", n, "from_offset", max(from, to-n), "to_offset", to)
	} else if f.epochLow >= to {
		return nil // crossed again, and the epoch is still new past the gap
	}
	return f.bumpEpoch()
}

// skipCorrupt declares the records of a damaged edge batch, [from,
// d.To), lost to the core: counted, logged as an ERROR with the segment and
// byte, and sent past under a new epoch like any other declared gap.
func (f *forwarder) skipCorrupt(from int64, d *storage.CorruptError) error {
	n := d.To - max(from, d.From)
	if n <= 0 {
		return nil
	}
	f.mu.Lock()
	counted := from < f.skippedTo
	f.skippedTo = max(f.skippedTo, d.To)
	if !counted {
		f.dropped += n
	}
	f.mu.Unlock()
	if !counted {
		f.b.m.corrupt.WithLabelValues(f.stream).Add(float64(n))
		f.logger.Error("edge records lost to a corrupt batch on disk; skipping them", "records", n,
			"from_offset", max(from, d.From), "to_offset", d.To, "segment", d.Segment, "position", d.Position, "reason", d.Reason)
	} else if f.epochLow >= d.To {
		return nil // a session that rewound over the same damage, epoch still new past it
	}
	return f.bumpEpoch()
}

// ack counts a batch the core acknowledged; the session saves the cursor
// past it (saveCursor).
func (f *forwarder) ack(in inflight) {
	now := time.Now()
	f.mu.Lock()
	f.lastAck, f.progress = now, now
	f.lastErr = ""
	f.mu.Unlock()
	f.b.m.records.WithLabelValues(f.stream).Add(float64(in.records))
	f.b.m.bytes.WithLabelValues(f.stream).Add(float64(in.bytes))
}

// check turns a produce response into an error unless the partition was
// written (a re-send the core recognised also answers success).
func (f *forwarder) check(resp *kmsg.ProduceResponse, cp int32) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if t.Topic != f.coreTopic || p.Partition != cp {
				continue
			}
			err := kerr.ErrorForCode(p.ErrorCode)
			if err == nil {
				return nil
			}
			if errors.Is(err, kerr.MessageTooLarge) && f.maxBatch > 1024 {
				f.maxBatch /= 2
				f.logger.Warn("core refused a batch as too large; sending smaller batches", "max_batch_bytes", f.maxBatch)
			}
			msg := ""
			if p.ErrorMessage != nil {
				msg = ": " + *p.ErrorMessage
			}
			return fmt.Errorf("produce to %s/%d%s: %w", f.coreTopic, cp, msg, err)
		}
	}
	return fmt.Errorf("produce to %s/%d: partition missing from response", f.coreTopic, cp)
}

func (f *forwarder) produceRequest(cp int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = int32(f.b.cfg.RequestTimeout / time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = f.coreTopic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = cp
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// encode re-encodes the records of raw (whole edge batches) from edge offset
// next on as one batch for the core: key, value, timestamp and headers kept,
// edge-id and edge-offset added, sequence = edge offset. It stops at a gap in
// offsets so that sequences stay contiguous within the batch. It returns the
// batch, its record count and the edge offset after its last record.
func (f *forwarder) encode(raw []byte, next int64) ([]byte, int, int64, error) {
	recs, after, err := f.collect(raw, next)
	if err != nil || len(recs) == 0 {
		return nil, 0, after, err
	}
	opts := recordbatch.BuildOptions{Compression: f.b.codec, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}
	if f.pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch = f.pid, f.epoch
		opts.BaseSequence = forwarded.Sequence(recs[0].Offset)
	}
	batch, err := recordbatch.Build(recs, opts)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("build forwarded batch at %d: %w", next, err)
	}
	return batch, len(recs), after, nil
}

// collect decodes the records of raw from edge offset next on, contiguous
// and within maxBatch, with the edge headers added. after is the edge
// offset after the last one, or past raw when it holds none to forward.
func (f *forwarder) collect(raw []byte, next int64) ([]recordbatch.Record, int64, error) {
	var recs []recordbatch.Record
	expect := int64(-1)
	size := 0
	after, end := next, next
	errGap := errors.New("gap")
	err := recordbatch.Split(raw, func(h recordbatch.Header, b []byte) error {
		end = max(end, h.NextOffset())
		if h.IsControl() {
			return nil
		}
		rs, err := recordbatch.Records(b)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Offset < next {
				continue
			}
			if expect >= 0 && r.Offset != expect {
				return errGap
			}
			// Bound the batch the core receives, not just what was read:
			// the added headers grow every record.
			sz := recordSize(r) + len(f.b.edgeID) + 40
			if len(recs) > 0 && size+sz > f.maxBatch {
				return errGap
			}
			size += sz
			r.Headers = append(r.Headers,
				recordbatch.RecordHeader{Key: HeaderEdgeID, Value: []byte(f.b.edgeID)},
				recordbatch.RecordHeader{Key: HeaderEdgeOffset, Value: strconv.AppendInt(nil, r.Offset, 10)})
			recs = append(recs, r)
			expect = r.Offset + 1
			after = expect
		}
		return nil
	})
	if err != nil && !errors.Is(err, errGap) {
		return nil, 0, fmt.Errorf("decode edge batch at %d: %w", next, err)
	}
	if len(recs) == 0 {
		return nil, end, nil // nothing to forward in these batches: step over them
	}
	return recs, after, nil
}

// recordSize approximates a record's encoded size (varint overheads rounded up).
func recordSize(r recordbatch.Record) int {
	n := 24 + len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return n
}
