package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-io/tributary/internal/tick"
)

// Source delivers one aggregation's input records.
type Source interface {
	// Partitions lists the source topic's partitions.
	Partitions(ctx context.Context) ([]int32, error)
	// Start begins consuming: at from[p] for a listed partition, else at
	// the partition's earliest offset.
	Start(ctx context.Context, partitions []int32, from map[int32]int64) error
	// Poll waits for records (or until ctx ends) and returns them, each
	// partition's in offset order. It reports each partition's end offset
	// as last seen (for lag and idleness) through ends. The slice is valid
	// until the next Poll; the byte slices in it stay valid.
	Poll(ctx context.Context, ends map[int32]int64) ([]Record, error)
	Close()
}

// Sink writes outputs. Written records must carry Output.ID in the
// HeaderID header, so IDsSince can find them again.
type Sink interface {
	// Write queues outputs; they are durable only after Flush.
	Write(ctx context.Context, outs []Output) error
	// Flush waits until every queued output is acknowledged and returns,
	// per "topic/partition" written since the last Flush, the offset after
	// the last record written there.
	Flush(ctx context.Context) (map[string]int64, error)
	// IDsSince returns "topic\x00key\x00id" of every record in the topics'
	// partitions from from["topic/partition"] (the earliest offset when
	// absent) to their current end.
	IDsSince(ctx context.Context, topics []string, from map[string]int64) (map[string]struct{}, error)
	Close()
}

// Checkpoint is what a CheckpointStore keeps for one aggregation: the
// engine state (with the input offsets it covers), how far each output
// partition had been written when it was taken, and output IDs already
// written past the state that the engine has yet to re-emit.
type Checkpoint struct {
	State      []byte           `cbor:"1,keyasint"`
	OutputEnds map[string]int64 `cbor:"2,keyasint"`
	Pending    []string         `cbor:"3,keyasint"`
	SavedAt    int64            `cbor:"4,keyasint"` // unix ms, informational
}

// CheckpointStore saves checkpoints durably (Save returns once fsynced).
type CheckpointStore interface {
	Load() (Checkpoint, bool, error)
	Save(Checkpoint) error
	Close() error
}

// Runner runs one aggregation exactly once over a Source into a Sink:
//
//  1. Restore the engine from the last checkpoint (state + input offsets).
//  2. Collect the IDs of outputs written after that checkpoint (read from
//     the output partitions from the offsets the checkpoint recorded), plus
//     the IDs the checkpoint still listed as pending.
//  3. Consume from the checkpoint's offsets; every output the engine emits
//     whose ID is in that set was written before the crash and is dropped
//     (once); everything else is written.
//  4. Every interval: flush the sink (all outputs acknowledged), then save
//     state, input offsets, output ends and the still-pending IDs together.
//
// A crash before step 4 completes loses nothing (the outputs are
// re-derived from the previous checkpoint) and duplicates nothing (step 2
// finds what had been written). The engine is deterministic, so re-derived
// outputs are byte-identical. Any error restarts the loop from step 1.
type Runner struct {
	Agg      *Aggregation
	Source   Source
	Sink     Sink
	Store    CheckpointStore
	Interval time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics // may be nil
	// Now is the clock for the timestamp bound and idleness; nil: time.Now.
	Now func() time.Time
	// OnCheckpoint, if set, is told the next input offset of every source
	// partition the last checkpoint covers: once at start (the restored
	// offsets) and after every saved checkpoint. A replay never needs a
	// record below them, so the edge holds its source logs' retention there.
	OnCheckpoint func(next map[int32]int64)

	mu     sync.Mutex
	status Status
}

// Status is what /healthz reports for an aggregation.
type Status struct {
	Running        bool      `json:"running"`
	LastCheckpoint time.Time `json:"last_checkpoint"`
	LagRecords     int64     `json:"lag_records"`
	WindowsOpen    int       `json:"windows_open"`
	Watermark      int64     `json:"watermark_ms"`
	Processed      uint64    `json:"records_processed"` // by this run
	LastError      string    `json:"last_error,omitempty"`
}

// Status returns the runner's current status.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Runner) setStatus(f func(*Status)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

// Run runs until ctx ends, restarting from the last checkpoint after any
// error (backing off up to 10 s). It returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		began := time.Now()
		err := r.runOnce(ctx)
		if time.Since(began) > time.Minute {
			backoff = 100 * time.Millisecond // it had been running well
		}
		r.setStatus(func(s *Status) { s.Running = false })
		if ctx.Err() != nil {
			return nil
		}
		r.Logger.Error("aggregation stopped; restarting from its last checkpoint", "err", err, "backoff", backoff)
		r.setStatus(func(s *Status) { s.LastError = err.Error() })
		if r.Metrics != nil {
			r.Metrics.restarts.WithLabelValues(r.Agg.Name).Inc()
		}
		if !tick.Sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// RunAll runs each of runners in its own goroutine until ctx ends (see
// Run); wait returns once all have stopped, each after a last checkpoint.
func RunAll(ctx context.Context, runners []*Runner) (wait func()) {
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Go(func() { _ = r.Run(ctx) })
	}
	return wg.Wait
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// topicsOut are the topics the aggregation writes.
func (r *Runner) topicsOut() []string {
	t := []string{r.Agg.Output}
	if r.Agg.SideTopic != "" {
		t = append(t, r.Agg.SideTopic)
	}
	return t
}

func outputKey(o *Output) string {
	return o.Topic + "\x00" + string(o.Key) + "\x00" + o.ID
}

func (r *Runner) runOnce(ctx context.Context) error {
	name := r.Agg.Name
	eng, err := New(r.Agg, r.Now)
	if err != nil {
		return err
	}
	cp, ok, err := r.Store.Load()
	if err != nil {
		return fmt.Errorf("load checkpoint of %q: %w", name, err)
	}
	ends := map[string]int64{}
	if ok {
		if err := eng.Restore(cp.State); err != nil {
			return err
		}
		for k, v := range cp.OutputEnds {
			ends[k] = v
		}
	}
	parts, err := r.Source.Partitions(ctx)
	if err != nil {
		return fmt.Errorf("partitions of %q: %w", r.Agg.Source, err)
	}
	eng.Assign(parts)
	written, err := r.Sink.IDsSince(ctx, r.topicsOut(), ends)
	if err != nil {
		return fmt.Errorf("read outputs written since the checkpoint: %w", err)
	}
	for _, id := range cp.Pending {
		written[id] = struct{}{}
	}
	r.Logger.Info("aggregation starting", "resumed", ok, "offsets", eng.NextOffsets(),
		"outputs_to_skip", len(written))
	defer r.Sink.Close()
	defer r.Source.Close()
	if err := r.Source.Start(ctx, parts, eng.NextOffsets()); err != nil {
		return err
	}
	if r.OnCheckpoint != nil {
		r.OnCheckpoint(eng.NextOffsets())
	}
	r.setStatus(func(s *Status) { s.Running = true; s.LastError = "" })

	var pending []Output
	var deduped uint64
	emit := func(o Output) {
		if len(written) > 0 {
			k := outputKey(&o)
			if _, ok := written[k]; ok {
				delete(written, k)
				deduped++
				return
			}
		}
		pending = append(pending, o)
	}
	partEnds := map[int32]int64{}
	lastSeen := map[int32]time.Time{}
	started := r.now()
	lastCheckpoint := r.now()
	var lastEventTs int64
	var prev Counters
	warnedSilent := false
	for ctx.Err() == nil {
		recs, err := r.Source.Poll(ctx, partEnds)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("consume %q: %w", r.Agg.Source, err)
		}
		now := r.now()
		lastP := int32(-1)
		for i := range recs {
			eng.Process(&recs[i], emit)
			if p := recs[i].Partition; p != lastP { // records come in runs per partition
				lastSeen[p], lastP = now, p
			}
			lastEventTs = max(lastEventTs, recs[i].Timestamp)
		}
		if r.Agg.IdleTimeout == 0 && !warnedSilent && now.Sub(started) > time.Minute && len(lastSeen) > 0 {
			for _, p := range parts {
				if _, ok := lastSeen[p]; !ok && partEnds[p] == eng.NextOffsets()[p] {
					r.Logger.Warn("a source partition has had no records since start: windows stay open until it has (set idle_timeout to let it go)",
						"partition", p)
					warnedSilent = true
					break
				}
			}
		}
		if r.Agg.IdleTimeout > 0 {
			next := eng.NextOffsets()
			for _, p := range parts {
				seen, ok := lastSeen[p]
				if !ok {
					seen = started
				}
				// A partition fetches never returned anything for has no
				// known end: franz-go leaves empty partitions out of fetches.
				end, known := partEnds[p]
				caughtUp := !known || next[p] >= end
				eng.SetIdle(p, caughtUp && now.Sub(seen) >= r.Agg.IdleTimeout, emit)
			}
		}
		if len(pending) > 0 {
			if err := r.Sink.Write(ctx, pending); err != nil {
				return fmt.Errorf("write outputs: %w", err)
			}
			pending = pending[:0]
		}
		c := eng.Counters()
		var lag int64
		for p, end := range partEnds {
			if d := end - eng.NextOffsets()[p]; d > 0 {
				lag += d
			}
		}
		r.observe(&prev, c, deduped, lag, lastEventTs, eng.Watermark())
		deduped = 0
		r.setStatus(func(s *Status) {
			s.LagRecords, s.WindowsOpen, s.Watermark, s.Processed = lag, c.WindowsOpen, eng.Watermark(), c.Records
		})
		if now.Sub(lastCheckpoint) >= r.Interval {
			if err := r.checkpoint(ctx, eng, ends, written); err != nil {
				return err
			}
			lastCheckpoint = now
		}
	}
	// Stopping: a last checkpoint so a restart resumes exactly here.
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if len(pending) > 0 {
		if err := r.Sink.Write(stopCtx, pending); err != nil {
			return fmt.Errorf("write outputs on stop: %w", err)
		}
	}
	return r.checkpoint(stopCtx, eng, ends, written)
}

func (r *Runner) checkpoint(ctx context.Context, eng *Engine, ends map[string]int64, written map[string]struct{}) error {
	flushed, err := r.Sink.Flush(ctx)
	if err != nil {
		return fmt.Errorf("flush outputs: %w", err)
	}
	for k, v := range flushed {
		ends[k] = max(ends[k], v)
	}
	state, err := eng.Snapshot()
	if err != nil {
		return err
	}
	prunePending(written, eng)
	cp := Checkpoint{State: state, OutputEnds: make(map[string]int64, len(ends)), SavedAt: r.now().UnixMilli()}
	for k, v := range ends {
		cp.OutputEnds[k] = v
	}
	for k := range written {
		cp.Pending = append(cp.Pending, k)
	}
	sort.Strings(cp.Pending)
	if err := r.Store.Save(cp); err != nil {
		return fmt.Errorf("save checkpoint of %q: %w", r.Agg.Name, err)
	}
	if r.OnCheckpoint != nil {
		r.OnCheckpoint(eng.NextOffsets())
	}
	now := r.now()
	r.setStatus(func(s *Status) { s.LastCheckpoint = now })
	if r.Metrics != nil {
		r.Metrics.checkpoints.WithLabelValues(r.Agg.Name).Inc()
		r.Metrics.checkpointTime.WithLabelValues(r.Agg.Name).Set(float64(now.UnixMilli()) / 1000)
		r.Metrics.checkpointBytes.WithLabelValues(r.Agg.Name).Set(float64(len(state)))
	}
	return nil
}

// prunePending drops IDs the engine can no longer emit: finals of windows
// the watermark passed, and record-derived outputs of offsets behind it.
func prunePending(written map[string]struct{}, eng *Engine) {
	next := eng.NextOffsets()
	for k := range written {
		i := strings.LastIndexByte(k, 0)
		if i < 0 {
			delete(written, k)
			continue
		}
		parts := strings.Split(k[i+1:], "/")
		switch {
		case parts[0] == "f" && len(parts) == 3:
			if end, err := strconv.ParseInt(parts[2], 10, 64); err == nil && end <= eng.Watermark() {
				delete(written, k)
			}
		case len(parts) >= 3:
			p, err1 := strconv.ParseInt(parts[len(parts)-2], 10, 32)
			off, err2 := strconv.ParseInt(parts[len(parts)-1], 10, 64)
			if err1 == nil && err2 == nil && off < next[int32(p)] {
				delete(written, k)
			}
		default:
			delete(written, k)
		}
	}
}

// errStopped is returned by sources and sinks used after Close.
var errStopped = errors.New("stopped")
