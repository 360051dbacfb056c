package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// AppendOptions tune one append.
type AppendOptions struct {
	// Durable makes Append wait until an fsync covers the batch.
	Durable bool
	// DeferSync makes Append return without waiting for the fsync its log
	// would wait for (Durable, or SyncAlways): the caller waits itself
	// (WaitSynced), once it has released what it held while appending.
	DeferSync bool
	// LeaderEpoch, if >= 0, is stamped into each batch's partition leader epoch.
	LeaderEpoch int32
	// KeepOffsets appends batches that already carry their offsets (a
	// replica copying its leader); each must start at or after NextOffset.
	KeepOffsets bool
	// Idempotent checks producer id/epoch/sequence: a retry of one of the
	// producer's last 5 batches is answered with the original offsets and not
	// appended again (AppendResult.Duplicate); a gap is ErrOutOfOrderSequence.
	Idempotent bool
	// Sequences picks each producer's SequenceMode for an idempotent append;
	// nil is SequencePerBatch (Kafka's) for every producer.
	Sequences func(producerID int64) SequenceMode
}

// sequenceMode is the mode the caller picked for pid.
func (o AppendOptions) sequenceMode(pid int64) SequenceMode {
	if o.Sequences != nil {
		return o.Sequences(pid)
	}
	return SequencePerBatch
}

// AppendResult says where appended batches landed.
type AppendResult struct {
	BaseOffset int64 // offset of the first record
	LastOffset int64 // offset of the last record
	// LogAppendTime is -1: batches keep their producer's CreateTime.
	LogAppendTime int64
	// Duplicate is set when an idempotent retry was recognised: nothing was
	// written and the offsets are those of the original append.
	Duplicate bool
}

// RecoveryReport says what opening the log found and did.
type RecoveryReport struct {
	// TruncatedBytes were cut from the active segment's torn tail.
	TruncatedBytes int64
	// Segment and Position locate the first bad batch, if any.
	Segment  string
	Position int64
	Reason   error
	// IndexesRebuilt counts sealed segments whose indexes were rebuilt.
	IndexesRebuilt int
}

// Log is one partition: a directory of segments, the last one active.
//
// Appends write under a mutex and return at once unless they asked for
// durability; an append that waits fsyncs itself when no fsync is running,
// and every append waiting meanwhile shares the next one (group commit).
// A syncer goroutine keeps the interval and bytes policies.
type Log struct {
	dir    string
	cfg    LogConfig
	logger *slog.Logger
	// syncs times the active segment's fsyncs (nil: not counted); set
	// before the syncer starts and never changed.
	syncs prometheus.Observer

	mu       sync.RWMutex
	segments []*segment
	start    int64
	next     int64
	readOnly error
	closed   bool
	// sparse: the log may hold offset gaps (it has been compact; see
	// noteSparse), so recovery does not take them for damage.
	sparse bool
	// cuts counts truncations and resets: an fsync that began before one
	// covered data the log no longer holds (see syncLocked).
	cuts uint64
	// modes is the owner's SequenceMode per producer (Topics.
	// SetSequenceModes; nil: unknown), for the producers the log meets
	// without an append that names one: replayed, or rebuilt after a cut.
	modes     func(producerID int64) SequenceMode
	changed   chan struct{}
	producers producerState
	txns      txnIndex // transactions (txn.go)
	unsynced  int64
	synced    int64
	syncErr   error
	syncedCh  chan struct{}
	recovery  RecoveryReport
	epochs    []epochEntry
	// epochsSaved: the leader-epoch checkpoint on disk matches epochs
	// (an empty new log has none until its first epoch or its Close).
	epochsSaved bool
	floor       atomic.Int64
	// damage lists the unreadable ranges found by reads and scrubs (see
	// integrity.go); its own lock, as reads find damage under mu's read lock.
	damageMu sync.Mutex
	damage   []Damage
	bytes    atomic.Int64 // total segment bytes, read without the lock
	stopOnce sync.Once

	kick chan struct{}
	// syncMu is held for each fsync of the active segment, by the syncer
	// goroutine or by a waiter that found none running (see waitSynced).
	syncMu sync.Mutex
	// reconfigured tells the syncer to re-read the durability policy.
	reconfigured chan struct{}
	stop         chan struct{}
	done         chan struct{}
}

// OpenLog opens or creates the log in dir, recovering the active segment.
func OpenLog(dir string, cfg LogConfig, logger *slog.Logger) (*Log, error) {
	return openLog(dir, cfg, logger, nil)
}

// openLog is OpenLog timing the log's fsyncs in syncs (nil: not counted).
func openLog(dir string, cfg LogConfig, logger *slog.Logger, syncs prometheus.Observer) (*Log, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.SegmentBytes > MaxSegmentBytes {
		// A topic config saved before the bound existed: it still opens.
		logger.Warn("segment bytes above the maximum; using the maximum", "log", dir, "segment_bytes", cfg.SegmentBytes, "max", int64(MaxSegmentBytes))
		cfg.SegmentBytes = MaxSegmentBytes
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	cfg = cfg.WithDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	l := &Log{
		dir:          dir,
		cfg:          cfg,
		logger:       logger.With("log", dir),
		syncs:        syncs,
		changed:      make(chan struct{}),
		syncedCh:     make(chan struct{}),
		kick:         make(chan struct{}, 1),
		reconfigured: make(chan struct{}, 1),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	l.floor.Store(math.MaxInt64)
	if err := l.recover(); err != nil {
		l.closeSegments()
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	go l.syncLoop()
	return l, nil
}

// recover opens every segment, validates what must be validated and rebuilds
// in-memory state.
func (l *Log) recover() error {
	removeLeftovers(l.dir)
	if err := l.noteSparse(l.cfg.Cleanup); err != nil {
		return err
	}
	bases, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		s, err := createSegment(l.dir, 0, l.cfg.IndexIntervalBytes, l.dense())
		if err != nil {
			return err
		}
		l.segments = []*segment{s}
	}
	for i, base := range bases {
		path := filepath.Join(l.dir, segmentName(base)+logSuffix)
		f, err := os.OpenFile(path, os.O_RDWR, 0o644)
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		s := &segment{base: base, path: path, f: f, next: base, maxTS: -1, created: time.Now(), appended: time.Now(), indexEvery: l.cfg.IndexIntervalBytes, dense: l.dense()}
		if st, err := f.Stat(); err == nil {
			s.appended = st.ModTime()
		}
		if n := len(l.segments); n > 0 && (base < l.segments[n-1].next || (l.dense() && base != l.segments[n-1].next)) {
			s.close()
			l.markReadOnly(path, 0, fmt.Errorf("segment base %d overlaps previous segment ending at %d", base, l.segments[n-1].next))
			break
		}
		l.segments = append(l.segments, s)
		active := i == len(bases)-1
		if !active && s.loadIndexes() == nil {
			continue
		}
		res, err := s.scan()
		if err != nil {
			return err
		}
		if res.badErr == nil {
			if !active {
				s.sealed = true
				l.recovery.IndexesRebuilt++
				if err := s.writeIndexes(); err != nil {
					return err
				}
			}
			continue
		}
		if !active || res.midCorrupt {
			// Damage inside the log: serve what is before it, append nothing,
			// and say exactly where it is. Cutting it away would silently
			// drop acknowledged records that follow it.
			s.size = res.validEnd
			s.sealed = !active
			l.markReadOnly(path, res.validEnd, res.badErr)
			break
		}
		st, _ := s.f.Stat()
		cut := st.Size() - res.validEnd
		if err := s.f.Truncate(res.validEnd); err != nil {
			return fmt.Errorf("truncate torn tail of %s: %w", path, err)
		}
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
		l.recovery.TruncatedBytes = cut
		l.recovery.Segment, l.recovery.Position, l.recovery.Reason = path, res.validEnd, res.badErr
		l.logger.Warn("truncated torn tail of active segment", "segment", path, "position", res.validEnd, "bytes", cut, "reason", res.badErr)
	}
	// Segments after a read-only cut are kept on disk but not served.
	for _, s := range l.segments[:len(l.segments)-1] {
		s.sealed = true
	}
	first, last := l.segments[0], l.segments[len(l.segments)-1]
	l.start, l.next = first.base, last.next
	if err := l.loadLogStart(); err != nil {
		return err
	}
	if err := last.f.Sync(); err != nil {
		return fmt.Errorf("sync active segment: %w", err)
	}
	l.synced = l.next
	l.recount()
	if err := l.loadProducers(); err != nil {
		return err
	}
	if err := l.loadTxns(true); err != nil {
		return err
	}
	return l.loadEpochs()
}

// recount recomputes the byte total after a change other than an append. mu held.
func (l *Log) recount() {
	var n int64
	for _, s := range l.segments {
		n += s.size
	}
	l.bytes.Store(n)
}

func (l *Log) markReadOnly(path string, pos int64, why error) {
	l.readOnly = fmt.Errorf("%w: %s at byte %d: %v", ErrReadOnly, path, pos, why)
	l.recovery.Segment, l.recovery.Position, l.recovery.Reason = path, pos, why
	l.logger.Error("corruption inside the log: serving data before it, refusing appends", "segment", path, "position", pos, "reason", why)
}

// removeLeftovers deletes temp files of an interrupted index or compaction write.
func removeLeftovers(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), ".cleaned") {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// loadProducers restores idempotence state from the snapshot and replays the
// batch headers written after it.
func (l *Log) loadProducers() error {
	from, ps, err := readProducerSnapshot(l.dir)
	if err != nil {
		l.logger.Warn("ignoring unreadable producer snapshot", "err", err)
	}
	// Replay every batch still on disk after the snapshot, including those
	// below a log start DeleteRecords moved: they were appended all the same.
	first := l.segments[0].base
	if from < 0 || from > l.next {
		from, ps = first, producerState{}
	}
	l.producers = ps
	// A replayed batch keeps its producer's mode from the snapshot; a
	// producer first seen here is taken as per-batch, which only differs
	// from source offsets in keeping batches from older epochs, never used.
	now := time.Now().UnixMilli()
	return l.walkHeaders(max(from, first), func(h recordbatch.Header) {
		l.producers.update(h, l.fromSource(l.producers, h.ProducerID), now)
	})
}

// walkHeaders calls fn for every batch header from offset on.
func (l *Log) walkHeaders(from int64, fn func(recordbatch.Header)) error {
	return l.walkBatches(from, func(_ *segment, _ int64, h recordbatch.Header) error {
		fn(h)
		return nil
	})
}

// walkBatches calls fn with the segment, position and header of every batch
// from offset on.
func (l *Log) walkBatches(from int64, fn func(s *segment, pos int64, h recordbatch.Header) error) error {
	for _, s := range l.segments {
		if s.next <= from {
			continue
		}
		pos, err := s.find(from)
		if err != nil {
			return err
		}
		for pos < s.size {
			h, err := s.header(pos)
			if err != nil {
				return fmt.Errorf("walk %s at %d: %w", s.path, pos, err)
			}
			if err := fn(s, pos, h); err != nil {
				return err
			}
			pos += int64(h.Size())
		}
	}
	return nil
}

// dense reports whether offsets must be gap-free (any non-compacted log).
func (l *Log) dense() bool { return !l.sparse && l.cfg.Cleanup != CleanupCompact }

// sparseFile marks a log that has been compact: compaction leaves offset
// gaps, and they stay after the policy returns to delete.
const sparseFile = "offset-gaps"

// noteSparse records, once and on disk, that a log under policy may hold
// offset gaps, or learns that an earlier policy left some. mu held (or the
// log not yet shared).
func (l *Log) noteSparse(policy CleanupPolicy) error {
	path := filepath.Join(l.dir, sparseFile)
	if !l.sparse {
		if _, err := os.Stat(path); err == nil {
			l.sparse = true
		}
	}
	if l.sparse || policy != CleanupCompact {
		return nil
	}
	if err := atomicfile.Write(path, nil, 0o644); err != nil {
		return fmt.Errorf("mark %s as compacted: %w", l.dir, err)
	}
	l.sparse = true
	return nil
}

func (l *Log) active() *segment { return l.segments[len(l.segments)-1] }

// Append writes one or more concatenated RecordBatch v2 batches (as a
// producer sends them: base offset ignored and reassigned unless KeepOffsets).
// Every batch is CRC-checked; nothing is written if any batch is bad. The base
// offsets (and leader epoch) in batches are rewritten in place; nothing keeps
// batches after Append returns, so the caller may reuse the buffer.
//
// It runs four named steps: validate (no lock), then under the lock dedupe
// (idempotent producers), assign (offsets, epochs, append time) and write.
func (l *Log) Append(ctx context.Context, batches []byte, opts AppendOptions) (AppendResult, error) {
	in, err := validateAppend(l.Config(), batches, opts, time.Now())
	if err != nil {
		return AppendResult{}, err
	}
	l.mu.Lock()
	res, target, wait, err := l.appendLocked(&in, opts)
	l.mu.Unlock()
	if err != nil || !wait {
		return res, err
	}
	if err := l.waitSynced(ctx, target, 0); err != nil {
		return res, err
	}
	return res, nil
}

// pendingAppend is one Append's batches on their way through the steps:
// the bytes, each batch's header and start within them, and the time the
// append counts as happening.
type pendingAppend struct {
	batches []byte
	hdrs    []recordbatch.Header
	starts  []int
	now     time.Time
	// fromSource[i] says batch i's producer numbers records by source
	// offset; set by dedupe, nil when the append is not idempotent.
	fromSource []bool
}

// validateAppend is the lock-free step: it recompresses to the log's codec,
// CRC-checks and splits the batches, and checks sizes and timestamps against
// cfg, one snapshot of the config (Reconfigure may change it under us).
func validateAppend(cfg LogConfig, batches []byte, opts AppendOptions, now time.Time) (pendingAppend, error) {
	in := pendingAppend{now: now}
	if len(batches) == 0 {
		return in, fmt.Errorf("%w: empty append", ErrInvalidBatch)
	}
	if !opts.KeepOffsets {
		var err error
		if batches, err = recompressBatches(batches, cfg.Compression); err != nil {
			return in, err
		}
	}
	pos := 0
	err := recordbatch.Split(batches, func(h recordbatch.Header, b []byte) error {
		if h.Size() > cfg.MaxBatchBytes {
			return fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, h.Size(), cfg.MaxBatchBytes)
		}
		if !opts.KeepOffsets && !h.IsControl() && int64(h.NumRecords) != int64(h.LastOffsetDelta)+1 {
			return fmt.Errorf("%w: %d records but last offset delta %d", ErrInvalidBatch, h.NumRecords, h.LastOffsetDelta)
		}
		in.hdrs = append(in.hdrs, h)
		in.starts = append(in.starts, pos)
		pos += len(b)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrBatchTooLarge) || errors.Is(err, ErrInvalidBatch) {
			return in, err
		}
		return in, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	in.batches = batches
	if !opts.KeepOffsets {
		if err := checkTimestamps(cfg, in.hdrs, now); err != nil {
			return in, err
		}
	}
	return in, nil
}

// appendLocked runs dedupe, assign and write with mu held. It returns the
// result, the offset a durable append waits to be synced up to, and whether
// it must wait (never for a duplicate or an error).
func (l *Log) appendLocked(in *pendingAppend, opts AppendOptions) (res AppendResult, target int64, wait bool, err error) {
	if l.closed {
		return res, 0, false, ErrClosed
	}
	if l.readOnly != nil {
		return res, 0, false, l.readOnly
	}
	if opts.Idempotent && !opts.KeepOffsets {
		dup, err := l.dedupeLocked(in, opts)
		if err != nil {
			return res, 0, false, err
		}
		if dup != nil {
			return AppendResult{BaseOffset: dup.BaseOffset, LastOffset: dup.LastOffset, LogAppendTime: -1, Duplicate: true}, 0, false, nil
		}
	} else if opts.Sequences != nil {
		// Not checked (a replica copying its leader), but remembered in
		// the caller's mode: a source-sequenced producer never expires,
		// here as on the leader, which this replica may become.
		in.fromSource = make([]bool, len(in.hdrs))
		for i, h := range in.hdrs {
			in.fromSource[i] = opts.sequenceMode(h.ProducerID) == SequenceFromSource
		}
	}
	next, err := l.assignLocked(in, opts)
	if err != nil {
		return res, 0, false, err
	}
	if err := l.writeLocked(in, next); err != nil {
		return res, 0, false, err
	}
	res = AppendResult{BaseOffset: in.hdrs[0].BaseOffset, LastOffset: in.hdrs[len(in.hdrs)-1].LastOffset(), LogAppendTime: -1}
	wait = (opts.Durable || l.cfg.Durability.Mode == SyncAlways) && !opts.DeferSync
	if !wait && l.cfg.Durability.Mode == SyncBytes && l.unsynced >= l.cfg.Durability.Bytes {
		l.kickSync()
	}
	return res, l.next, wait, nil
}

// dedupeLocked checks every batch against its producer's state as it would
// be after the batches before it in this append, in the mode the caller
// picked for that producer. It returns the original of a pure re-send; a
// forwarded batch that is partly a re-send is trimmed to its new records
// (only when it is the append's one batch). mu held.
func (l *Log) dedupeLocked(in *pendingAppend, opts AppendOptions) (*producerBatch, error) {
	in.fromSource = make([]bool, len(in.hdrs))
	view := producerState{}
	for i, h := range in.hdrs {
		if h.ProducerID < 0 {
			continue
		}
		if _, ok := view[h.ProducerID]; !ok {
			if e := l.producers.clone(h.ProducerID); e != nil {
				view[h.ProducerID] = e
			}
		}
		var dup *producerBatch
		var err error
		fromSource := opts.sequenceMode(h.ProducerID) == SequenceFromSource
		if fromSource {
			var skip int
			dup, skip, err = view.checkFromSource(h)
			if skip > 0 {
				if len(in.hdrs) > 1 {
					return nil, fmt.Errorf("%w: partly re-sent forwarded batch inside a multi-batch append", ErrOutOfOrderSequence)
				}
				if in.batches, h, err = trimForwarded(in.batches, skip); err != nil {
					return nil, err
				}
				in.hdrs[0] = h
			}
		} else {
			dup, err = view.check(h)
		}
		if err != nil {
			return nil, err
		}
		if dup != nil {
			if len(in.hdrs) > 1 {
				return nil, fmt.Errorf("%w: duplicate batch inside a multi-batch append", ErrOutOfOrderSequence)
			}
			return dup, nil
		}
		in.fromSource[i] = fromSource
		view.update(h, fromSource, 0) // a scratch view: its clock is never read
	}
	return nil, nil
}

// assignLocked gives each batch its offsets (or checks a replica's), the
// leader epoch and, for LogAppendTime logs, the append time, rewriting the
// bytes in place. It returns the log end after the batches. mu held.
func (l *Log) assignLocked(in *pendingAppend, opts AppendOptions) (int64, error) {
	off := l.next
	for i := range in.hdrs {
		b := in.batches[in.starts[i]:]
		h := &in.hdrs[i]
		if opts.KeepOffsets {
			if h.BaseOffset < off || (l.dense() && h.BaseOffset != off) {
				return 0, fmt.Errorf("%w: replica batch at offset %d does not follow log end %d", ErrInvalidBatch, h.BaseOffset, off)
			}
		} else {
			recordbatch.SetBaseOffset(b, off)
			h.BaseOffset = off
		}
		if opts.LeaderEpoch >= 0 {
			recordbatch.SetLeaderEpoch(b, opts.LeaderEpoch)
			h.LeaderEpoch = opts.LeaderEpoch
		}
		if l.cfg.TimestampType == LogAppendTime && !opts.KeepOffsets && !h.IsControl() {
			recordbatch.SetLogAppendTime(b[:h.Size()], in.now.UnixMilli())
			h.MaxTimestamp = in.now.UnixMilli()
			h.Attributes |= recordbatch.TimestampTypeBit
		}
		off = h.NextOffset()
	}
	return off, nil
}

// writeLocked checkpoints a new leader epoch, rolls the segment if due,
// writes the batches and publishes them: indexes, producer state, log end,
// and the Changed signal. On a failed write nothing is left behind. mu held.
func (l *Log) writeLocked(in *pendingAppend, next int64) error {
	// A new leader epoch is checkpointed before its first batch is written,
	// so the checkpoint is never behind the log (an entry past the end after
	// a failed write is trimmed at the next open).
	known := len(l.epochs)
	for _, h := range in.hdrs {
		l.trackEpoch(h.LeaderEpoch, h.BaseOffset)
	}
	if len(l.epochs) > known {
		if err := l.saveEpochs(); err != nil {
			// Forget the new epoch too, or the next append of it would
			// find it known and write it with the checkpoint behind.
			l.epochs = l.epochs[:known]
			return err
		}
	}
	if err := l.maybeRoll(int64(len(in.batches)), in.hdrs[0].BaseOffset); err != nil {
		return err
	}
	s := l.active()
	if _, err := s.f.WriteAt(in.batches, s.size); err != nil {
		// Leave no partial batch behind: cut back to the last whole one.
		terr := s.f.Truncate(s.size)
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return fmt.Errorf("%w: append to %s: %w", ErrDiskFull, s.path, err)
		}
		return fmt.Errorf("append to %s: %w", s.path, errors.Join(err, terr))
	}
	segPos := s.size
	s.appended = in.now
	for i, h := range in.hdrs {
		s.track(h, segPos+int64(in.starts[i]))
		if h.ProducerID >= 0 { // else no producer state to keep
			fromSource := l.fromSource(l.producers, h.ProducerID)
			if in.fromSource != nil {
				fromSource = in.fromSource[i]
			}
			l.producers.update(h, fromSource, in.now.UnixMilli())
		}
		l.trackTxn(h, in.batches[in.starts[i]:])
	}
	l.next = next
	l.unsynced += int64(len(in.batches))
	l.bytes.Add(int64(len(in.batches)))
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// checkTimestamps refuses CreateTime batches whose first or max timestamp
// lies outside the configured window around now (KIP-937). Only the batch
// header's two timestamps are checked, so records are not decompressed on
// the append path; a producer's batch spans milliseconds to seconds.
func checkTimestamps(cfg LogConfig, hdrs []recordbatch.Header, now time.Time) error {
	before, after := cfg.TimestampBeforeMax, cfg.TimestampAfterMax
	if cfg.TimestampType == LogAppendTime || (before <= 0 && after <= 0) {
		return nil
	}
	ms := now.UnixMilli()
	for _, h := range hdrs {
		if h.IsControl() {
			continue
		}
		for _, ts := range []int64{h.FirstTimestamp, h.MaxTimestamp} {
			if before > 0 && ts < ms-before.Milliseconds() {
				return fmt.Errorf("%w: timestamp %d is %v before the broker's time (message.timestamp.before.max.ms %d)",
					ErrInvalidTimestamp, ts, time.Duration(ms-ts)*time.Millisecond, before.Milliseconds())
			}
			if after > 0 && ts > ms+after.Milliseconds() {
				return fmt.Errorf("%w: timestamp %d is %v after the broker's time (message.timestamp.after.max.ms %d)",
					ErrInvalidTimestamp, ts, time.Duration(ts-ms)*time.Millisecond, after.Milliseconds())
			}
		}
	}
	return nil
}

// trimForwarded drops the first skip records of a forwarded batch (records
// the core already has) and re-encodes the rest with the matching sequence.
func trimForwarded(batch []byte, skip int) ([]byte, recordbatch.Header, error) {
	h, err := recordbatch.Validate(batch)
	if err != nil {
		return nil, h, err
	}
	recs, err := recordbatch.Records(batch)
	if err != nil {
		return nil, h, fmt.Errorf("%w: trim re-sent records: %w", ErrInvalidBatch, err)
	}
	opts := recordbatch.BuildOptions{
		Compression:   h.Compression(),
		ProducerID:    h.ProducerID,
		ProducerEpoch: h.ProducerEpoch,
		BaseSequence:  int32((int64(h.BaseSequence) + int64(skip)) % (math.MaxInt32 + 1)),
		LeaderEpoch:   h.LeaderEpoch,
	}
	out, err := recordbatch.Build(recs[skip:], opts)
	if err != nil {
		return nil, h, fmt.Errorf("trim re-sent records: %w", err)
	}
	nh, err := recordbatch.Validate(out)
	return out, nh, err
}

// maybeRoll seals the active segment when the next write would overflow it
// or it is too old. Called with mu held.
func (l *Log) maybeRoll(incoming int64, nextBase int64) error {
	s := l.active()
	if s.size == 0 {
		return nil
	}
	aged := l.cfg.SegmentAge > 0 && time.Since(s.created) >= l.cfg.SegmentAge
	// Index entries hold offsets relative to the segment base in 32 bits: a
	// batch past that (offset gaps of a compacted leader) starts a segment.
	far := nextBase-s.base > math.MaxUint32
	if s.size+incoming <= l.cfg.SegmentBytes && !aged && !far {
		return nil
	}
	return l.roll(nextBase)
}

// roll seals the active segment (fsync + indexes) and starts a new one.
func (l *Log) roll(base int64) error {
	s := l.active()
	if err := s.f.Sync(); err != nil {
		return l.failSync(fmt.Errorf("seal %s: %w", s.path, err))
	}
	if err := s.writeIndexes(); err != nil {
		return fmt.Errorf("seal %s: %w", s.path, err)
	}
	s.sealed = true
	ns, err := createSegment(l.dir, base, l.cfg.IndexIntervalBytes, l.dense())
	if err != nil {
		return err
	}
	l.segments = append(l.segments, ns)
	if base > l.synced {
		// Everything before the new segment is now on disk.
		l.advanceSynced(base, nil)
	}
	if err := writeProducerSnapshot(l.dir, base, l.producers); err != nil {
		l.logger.Warn("producer snapshot not written", "err", err)
	}
	l.saveTxns(base)
	return nil
}

func (l *Log) kickSync() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// advanceSynced publishes a new synced offset (or an fsync error). mu held.
func (l *Log) advanceSynced(to int64, err error) {
	if err != nil {
		l.syncErr = err
	} else if to > l.synced {
		l.synced = to
		l.unsynced = 0
	}
	close(l.syncedCh)
	l.syncedCh = make(chan struct{})
}

// waitSynced blocks until everything below target is fsynced. With no
// fsync running it fsyncs in the caller's goroutine (group commit led by
// the first waiter): handing the fsync to the syncer goroutine and being
// woken by it cost two goroutine switches per fsync, each a scheduling
// delay on a loaded machine. Waiters that arrive while an fsync runs wait
// for it, and the first of them leads the next one. A patient waiter
// (patience > 0) leads none until patience has passed: it rides along with
// the fsyncs others lead.
func (l *Log) waitSynced(ctx context.Context, target int64, patience time.Duration) error {
	var lead <-chan time.Time // fires when a patient waiter starts leading
	if patience > 0 {
		t := time.NewTimer(patience)
		defer t.Stop()
		lead = t.C
	}
	l.mu.RLock()
	cuts := l.cuts
	l.mu.RUnlock()
	for {
		l.mu.RLock()
		synced, ch, serr := l.synced, l.syncedCh, l.syncErr
		// Nothing waits for offsets not yet written: past the end, what
		// the caller appended was cut (maybe before this wait began).
		cut := l.cuts != cuts || target > l.next
		l.mu.RUnlock()
		if synced >= target {
			return nil
		}
		if serr != nil {
			return serr
		}
		if cut {
			return fmt.Errorf("wait for fsync to %d: %w", target, ErrTruncated)
		}
		if patience <= 0 {
			if l.trySync() {
				continue
			}
			// The fsync running may not cover target (or may find nothing
			// to do and publish nothing): the syncer runs another after it.
			l.kickSync()
		}
		select {
		case <-ch:
		case <-lead:
			patience, lead = 0, nil
		case <-ctx.Done():
			return fmt.Errorf("wait for fsync: %w", ctx.Err())
		case <-l.done:
			return ErrClosed
		}
	}
}

// syncLoop owns fsync of the active segment.
func (l *Log) syncLoop() {
	defer close(l.done)
	var t *time.Ticker
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	var tick <-chan time.Time
	retick := func() {
		if t != nil {
			t.Stop()
			t, tick = nil, nil
		}
		if d := l.Config().Durability; d.Mode == SyncInterval {
			t = time.NewTicker(d.Interval)
			tick = t.C
		}
	}
	retick()
	for {
		select {
		case <-l.stop:
			return
		case <-l.reconfigured:
			retick()
			continue
		case <-l.kick:
		case <-tick:
		}
		l.syncOnce()
	}
}

// syncOnce fsyncs the active segment outside the lock, so appends go on
// while the disk works, and then releases every waiter it covered.
func (l *Log) syncOnce() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	_, err := l.syncLocked()
	return err
}

// trySync is syncOnce unless an fsync is already running; it reports
// whether it published a new synced offset or an fsync error.
func (l *Log) trySync() bool {
	if !l.syncMu.TryLock() {
		return false
	}
	defer l.syncMu.Unlock()
	published, _ := l.syncLocked() // an error reaches the waiters as syncErr
	return published
}

// syncLocked is syncOnce with syncMu held; published says whether it
// advanced the synced offset or recorded an fsync error.
func (l *Log) syncLocked() (published bool, err error) {
	l.mu.RLock()
	if l.closed || l.synced >= l.next {
		l.mu.RUnlock()
		return false, nil
	}
	target, f, cuts := l.next, l.active().f, l.cuts
	l.mu.RUnlock()
	began := time.Now()
	err = datasync(f)
	if l.syncs != nil {
		l.syncs.Observe(time.Since(began).Seconds())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		s := l.holding(f)
		if l.closed || s == nil {
			// The file was closed under us: by Close, which syncs itself,
			// or by a truncation or reset that removed its segment.
			return false, nil
		}
		// A roll may have sealed the segment meanwhile; its fsync then
		// found nothing to report, as the kernel reports an error once.
		return true, l.failSync(fmt.Errorf("fsync %s: %w", s.path, err))
	}
	if l.cuts != cuts {
		// The log was cut while the disk worked: offsets up to target may
		// now be new appends this fsync did not cover. Publish nothing;
		// the waiters look again and the next fsync covers them.
		target = l.synced
	}
	l.advanceSynced(target, nil)
	return true, nil
}

// cut records a truncation or reset and wakes the fsync waiters, whose
// offsets may be gone (see waitSynced). mu held.
func (l *Log) cut() {
	l.cuts++
	l.advanceSynced(l.synced, nil)
}

// fromSource reports whether pid numbers its records by source offsets:
// as last appended (in ps), or by the owner's modes. mu held.
func (l *Log) fromSource(ps producerState, pid int64) bool {
	return ps.fromSource(pid) || (l.modes != nil && l.modes(pid) == SequenceFromSource)
}

// adoptSequenceModes gives the log its owner's modes and applies them to
// the producers it already holds: one replayed at open from batches after
// the last snapshot was taken as per-batch, and would expire after
// ProducerExpiry, where a source-sequenced producer (a bridge) must not.
func (l *Log) adoptSequenceModes(modes func(producerID int64) SequenceMode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.modes = modes
	for pid, e := range l.producers {
		if modes(pid) == SequenceFromSource {
			e.FromSource = true
		}
	}
}

// holding is the segment whose file is f, or nil. mu held.
func (l *Log) holding(f *os.File) *segment {
	for _, s := range l.segments {
		if s.f == f {
			return s
		}
	}
	return nil
}

// failSync records a failed data fsync. The kernel may have dropped the
// dirty pages it covered and reports that only once, so a later fsync can
// succeed without them: the log refuses appends from now on, and every
// waiter gets err. mu held.
func (l *Log) failSync(err error) error {
	l.readOnly = err
	l.logger.Error("fsync failed; log refuses appends", "err", err)
	l.advanceSynced(0, err)
	return err
}

// Read returns raw bytes of whole batches starting with the batch that holds
// offset from, up to maxBytes (at least one whole batch is returned even if
// larger, as Kafka does), never including batches that end at or beyond upTo
// (pass -1 for the log end). Reading at NextOffset returns no bytes and no
// error; an offset outside [StartOffset, NextOffset] is ErrOffsetOutOfRange.
// Bytes come from a single segment; read again for more.
func (l *Log) Read(from int64, maxBytes int, upTo int64) ([]byte, error) {
	return l.ReadInto(nil, from, maxBytes, upTo)
}

// ReadInto is Read with the caller's buffers: alloc(n) returns the n bytes
// (at least) a read is about to fill, and the batches come back in a prefix
// of them. A caller that pools large buffers reads without allocating; n is
// what this read needs (a segment's remaining bytes when fewer than
// maxBytes), so a small read never takes a large buffer. alloc may be
// called twice (the first batch outgrows maxBytes); nil means make.
func (l *Log) ReadInto(alloc func(n int) []byte, from int64, maxBytes int, upTo int64) ([]byte, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	if upTo < 0 || upTo > l.next {
		upTo = l.next
	}
	if from < l.start || from > l.next {
		return nil, fmt.Errorf("%w: %d not in [%d, %d]", ErrOffsetOutOfRange, from, l.start, l.next)
	}
	i := sort.Search(len(l.segments), func(i int) bool { return l.segments[i].base > from }) - 1
	for i = max(i, 0); i < len(l.segments); i++ {
		s := l.segments[i]
		pos, err := s.find(from)
		if err != nil {
			return nil, l.damaged(s, from, s.lookup(from), err)
		}
		if pos >= s.size {
			continue
		}
		b, err := s.readBatches(alloc, pos, maxBytes, upTo)
		var bad *badBatch
		if errors.As(err, &bad) {
			return nil, l.damaged(s, from, bad.pos, bad.err)
		}
		return b, err
	}
	return nil, nil
}

// readBatches reads whole batches from pos into a buffer from alloc, at
// most maxBytes unless the first batch alone is larger, stopping before any
// batch that reaches upTo.
func (s *segment) readBatches(alloc func(int) []byte, pos int64, maxBytes int, upTo int64) ([]byte, error) {
	if alloc == nil {
		alloc = func(n int) []byte { return make([]byte, n) }
	}
	want := int(min(int64(max(maxBytes, recordbatch.HeaderSize)), s.size-pos))
	buf := alloc(want)[:want]
	if err := s.readAt(buf, pos); err != nil {
		return nil, err
	}
	end := 0
	for end < len(buf) {
		h, err := recordbatch.ParseHeader(buf[end:])
		if errors.Is(err, recordbatch.ErrShort) && end > 0 {
			break
		}
		if err != nil && !errors.Is(err, recordbatch.ErrShort) {
			if end > 0 {
				break // serve what is whole; the next read reports the damage
			}
			return nil, &badBatch{pos: pos, err: err}
		}
		if h.LastOffset() >= upTo {
			break
		}
		if end+h.Size() > len(buf) {
			if end > 0 {
				break
			}
			// The first batch is larger than maxBytes: return it whole.
			buf = alloc(h.Size())[:h.Size()]
			if err := s.readAt(buf, pos); err != nil {
				return nil, err
			}
			if _, err := recordbatch.Validate(buf); err != nil {
				return nil, &badBatch{pos: pos, err: err}
			}
			return buf, nil
		}
		// Every batch is checked before it is served (CRC-32C, in hardware):
		// bit rot is reported, never handed to a consumer or forwarded.
		if _, err := recordbatch.Validate(buf[end : end+h.Size()]); err != nil {
			if end > 0 {
				break
			}
			return nil, &badBatch{pos: pos, err: err}
		}
		end += h.Size()
	}
	return buf[:end], nil
}

// readLocked reads one of l's fields under the read lock: the accessors
// below share it for the fields writers change under l.mu.
func readLocked[T any](l *Log, field *T) T {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return *field
}

// Synced returns a channel closed when the synced offset next advances (or
// an fsync fails), so a reader of fsynced data — the edge's bridge — waits
// for exactly that instead of polling SyncedOffset. Take it before reading
// SyncedOffset, so no fsync between the two is missed.
func (l *Log) Synced() <-chan struct{} { return readLocked(l, &l.syncedCh) }

// Changed returns a channel closed at the next append or truncation, and
// when the log is closed or deleted, for long polls.
func (l *Log) Changed() <-chan struct{} { return readLocked(l, &l.changed) }

// StartOffset is the first offset still held (log start offset).
func (l *Log) StartOffset() int64 { return readLocked(l, &l.start) }

// NextOffset is the offset the next record will get (log end offset).
func (l *Log) NextOffset() int64 { return readLocked(l, &l.next) }

// SyncedOffset is the offset below which everything is fsynced.
func (l *Log) SyncedOffset() int64 { return readLocked(l, &l.synced) }

// Recovery reports what opening the log found.
func (l *Log) Recovery() RecoveryReport { return readLocked(l, &l.recovery) }

// OffsetForTime returns the offset of the first record whose timestamp is
// >= ts (ms), and false if there is none.
func (l *Log) OffsetForTime(ts int64) (int64, bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, s := range l.segments {
		if s.maxTS < ts || s.size == 0 {
			continue
		}
		var pos int64
		if i := sort.Search(len(s.timeIndex), func(i int) bool { return s.timeIndex[i].ts >= ts }); i > 0 {
			pos = s.lookup(s.timeIndex[i-1].offset)
		}
		for pos < s.size {
			h, err := s.header(pos)
			if err != nil {
				return 0, false, err
			}
			if h.MaxTimestamp >= ts {
				return s.exactOffsetForTime(pos, h, ts), true, nil
			}
			pos += int64(h.Size())
		}
	}
	return 0, false, nil
}

// exactOffsetForTime finds the first record in the batch at ts or later; if
// the batch cannot be decoded it answers with the batch's base offset.
func (s *segment) exactOffsetForTime(pos int64, h recordbatch.Header, ts int64) int64 {
	buf := make([]byte, h.Size())
	if s.readAt(buf, pos) != nil {
		return h.BaseOffset
	}
	recs, err := recordbatch.Records(buf)
	if err != nil {
		return h.BaseOffset
	}
	for _, r := range recs {
		if r.Timestamp >= ts {
			return r.Offset
		}
	}
	return h.BaseOffset
}

// Size is the total bytes of all segments (cheap: no lock, no walk).
func (l *Log) Size() int64 { return l.bytes.Load() }

// Sync forces an fsync of everything appended so far.
func (l *Log) Sync() error {
	l.mu.RLock()
	target := l.next
	l.mu.RUnlock()
	return l.waitSynced(context.Background(), target, 0)
}

// WaitSynced returns once every offset below offset is fsynced, sharing the
// fsync with every other waiter (an acks=all produce waits for its own end).
func (l *Log) WaitSynced(ctx context.Context, offset int64) error {
	return l.waitSynced(ctx, offset, 0)
}

// WaitSyncedLazily is WaitSynced for a write that need not be durable at
// once (a transaction marker whose producer has already moved on): it waits
// for an fsync that something else leads (the next acks=all append, the
// interval syncer) and leads one itself only after patience, so that such
// writes ride along with the data's fsyncs instead of adding their own.
// Patience 0 is WaitSynced.
func (l *Log) WaitSyncedLazily(ctx context.Context, offset int64, patience time.Duration) error {
	return l.waitSynced(ctx, offset, patience)
}

// TruncateTo removes every batch that holds an offset at or after offset
// (replica divergence). A batch that straddles offset goes whole, as in Kafka.
func (l *Log) TruncateTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset >= l.next {
		return nil
	}
	if offset < l.start {
		offset = l.start
	}
	// Drop whole segments at or past offset, keeping at least the first.
	for len(l.segments) > 1 && l.active().base >= offset {
		if err := l.active().remove(); err != nil {
			return fmt.Errorf("truncate: %w", err)
		}
		l.segments = l.segments[:len(l.segments)-1]
	}
	s := l.active()
	pos, err := s.find(offset)
	if err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	if s.sealed {
		// It becomes the active segment again; its index files go stale.
		os.Remove(s.indexPath())
		os.Remove(s.timeIndexPath())
		s.sealed = false
	}
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("truncate %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return l.failSync(fmt.Errorf("truncate %s: %w", s.path, err))
	}
	if _, err := s.scan(); err != nil {
		return fmt.Errorf("truncate: rescan: %w", err)
	}
	l.next = s.next
	if s.size == 0 {
		l.next = max(s.base, min(offset, l.next))
	}
	l.cut()
	if l.next < l.start {
		// The batch holding offset also held the log start: nothing from
		// the start on is left, which is a reset to it. Producers keep
		// what the cut left them, as after any truncation.
		old := l.producers
		if err := l.resetLocked(l.start); err != nil {
			return err
		}
		l.producers = old
		return l.cutProducers()
	}
	l.synced = min(l.synced, l.next)
	l.recount()
	if err := l.trimEpochs(); err != nil {
		return err
	}
	if err := l.cutProducers(); err != nil {
		return err
	}
	if err := l.loadTxns(false); err != nil {
		return err
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// cutProducers rebuilds producer state after a truncation to l.next: from
// every batch still on disk, and, for a producer whose batches retention
// has removed (a bridge's high-water mark never expires), from what the
// cut left of its entry. The snapshot is rewritten at the new end, so a
// restart does not lose those producers either. mu held.
func (l *Log) cutProducers() error {
	old := l.producers
	l.producers = producerState{}
	now := time.Now().UnixMilli()
	if err := l.walkHeaders(l.segments[0].base, func(h recordbatch.Header) { l.producers.update(h, l.fromSource(old, h.ProducerID), now) }); err != nil {
		return err
	}
	for pid, e := range old {
		if l.producers[pid] != nil {
			continue
		}
		kept := slices.DeleteFunc(slices.Clone(e.Batches), func(b producerBatch) bool { return b.LastOffset >= l.next })
		if len(kept) == 0 {
			continue
		}
		epoch := e.Epoch
		if len(kept) < len(e.Batches) {
			// A cut batch may have raised the epoch (a bridge crossing a
			// gap); kept, it would refuse that batch when re-sent.
			epoch = kept[0].Epoch
			for _, b := range kept {
				epoch = max(epoch, b.Epoch)
			}
		}
		l.producers[pid] = &producerEntry{Epoch: epoch, Batches: kept, FromSource: e.FromSource, LastMs: e.LastMs}
	}
	if err := writeProducerSnapshot(l.dir, l.next, l.producers); err != nil {
		// A snapshot past the new end would come back into use once the
		// log grows past it again, with the cut batches in it.
		os.Remove(filepath.Join(l.dir, producerSnapshotFile))
		l.logger.Warn("producer snapshot not written after truncation", "err", err)
	}
	return nil
}

// ResetTo empties the log and makes offset its new start and end, for a
// replica whose leader no longer holds the offsets it would fetch next.
func (l *Log) ResetTo(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.resetLocked(offset)
}

// resetLocked is ResetTo with mu held. The new segment is made under a
// temporary name, the old ones are removed, oldest first, and only then is
// it renamed into place: a crash part-way leaves a shorter old log (or
// none), never two that overlap, which recovery would take for damage.
func (l *Log) resetLocked(offset int64) error {
	final := filepath.Join(l.dir, segmentName(offset)+logSuffix)
	tmp := final + ".tmp" // removed at the next open if the reset dies here
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("reset log to %d: %w", offset, err)
	}
	var errs []error
	for _, s := range l.segments {
		errs = append(errs, s.remove())
	}
	now := time.Now()
	ns := &segment{base: offset, path: final, f: f, next: offset, maxTS: -1, created: now, appended: now, indexEvery: l.cfg.IndexIntervalBytes, dense: l.dense()}
	l.segments = []*segment{ns}
	if err := os.Rename(tmp, final); err != nil {
		// The log is empty either way; it refuses appends until the
		// next open, which finds the temporary file and removes it.
		ns.path = tmp
		l.start, l.next, l.synced = offset, offset, offset
		l.cut()
		return l.failSync(fmt.Errorf("%w: reset to %d: %w", ErrReadOnly, offset, err))
	}
	if err := atomicfile.SyncDir(l.dir); err != nil {
		errs = append(errs, err)
	}
	l.start, l.next, l.synced = offset, offset, offset
	l.cut()
	os.Remove(filepath.Join(l.dir, logStartFile))
	l.recount()
	l.epochs = nil
	errs = append(errs, l.saveEpochs())
	l.producers = producerState{}
	os.Remove(filepath.Join(l.dir, producerSnapshotFile))
	errs = append(errs, l.loadTxns(false))
	close(l.changed)
	l.changed = make(chan struct{})
	return errors.Join(errs...)
}

// SetRetentionFloor stops retention from deleting segments that hold any
// offset >= floor (the edge keeps what the bridge has not forwarded).
func (l *Log) SetRetentionFloor(floor int64) { l.floor.Store(floor) }

// ReadOnlyReason is non-nil when recovery found mid-log corruption or an
// fsync failed.
func (l *Log) ReadOnlyReason() error { return readLocked(l, &l.readOnly) }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Config is the log's effective configuration.
func (l *Log) Config() LogConfig { return readLocked(l, &l.cfg) }

// Close flushes and closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	l.stopOnce.Do(func() { close(l.stop) })
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.readOnly == nil {
		if err := l.active().f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", l.dir, err))
		} else {
			l.advanceSynced(l.next, nil)
			if err := writeProducerSnapshot(l.dir, l.next, l.producers); err != nil {
				errs = append(errs, err)
			}
			l.saveTxns(l.next)
			if !l.epochsSaved {
				errs = append(errs, l.saveEpochs())
			}
		}
	}
	l.closed = true
	// Wake long polls: nothing more will arrive on this log.
	close(l.changed)
	l.changed = make(chan struct{})
	errs = append(errs, l.closeSegments())
	return errors.Join(errs...)
}

func (l *Log) closeSegments() error {
	var errs []error
	for _, s := range l.segments {
		if err := s.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	if err := l.Close(); err != nil {
		l.logger.Warn("close before delete", "err", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("delete log %s: %w", l.dir, err)
	}
	return nil
}
