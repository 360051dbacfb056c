package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// producerWindow is how many recent batches per producer are remembered for
// duplicate detection (Kafka's max.in.flight for idempotent producers).
const producerWindow = 5

const producerSnapshotFile = "producers.snapshot"

type producerBatch struct {
	FirstSeq   int32 `json:"first_seq"`
	LastSeq    int32 `json:"last_seq"`
	BaseOffset int64 `json:"base_offset"`
	LastOffset int64 `json:"last_offset"`
	// Epoch is the producer epoch the batch was written under (0 in a
	// snapshot from before it was kept).
	Epoch int16 `json:"epoch,omitempty"`
}

type producerEntry struct {
	Epoch   int16           `json:"epoch"`
	Batches []producerBatch `json:"batches"`
	// FromSource is set for a producer appended in SequenceFromSource mode,
	// so replay after a restart and truncation keep treating it so.
	FromSource bool `json:"from_source,omitempty"`
	// LastMs is when this broker last appended for the producer (wall
	// clock, not the producer's timestamps, which a device may have wrong);
	// batches replayed at start count as appended then. 0: not known yet
	// (a snapshot from before it was kept).
	LastMs int64 `json:"last_ms,omitempty"`
}

// producerState is the idempotence state of one partition, derived from the
// batch headers in the log itself: it is rebuilt from a snapshot plus the
// batches after it, so it can never disagree with the data.
type producerState map[int64]*producerEntry

func nextSeq(s int32) int32 {
	if s == math.MaxInt32 {
		return 0
	}
	return s + 1
}

func lastSeq(h recordbatch.Header) int32 {
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (math.MaxInt32 + 1))
}

// seqDistance is b-a in the 31-bit sequence space, mapped to (-2^30, 2^30].
func seqDistance(a, b int32) int64 {
	d := (int64(b) - int64(a)) % (math.MaxInt32 + 1)
	if d < 0 {
		d += math.MaxInt32 + 1
	}
	if d > 1<<30 {
		d -= math.MaxInt32 + 1
	}
	return d
}

// checkFromSource applies high-water deduplication to a batch of a
// SequenceFromSource producer: every record whose sequence is at or below the
// highest already appended is a re-send; a gap is accepted only under a newer
// producer epoch. It returns how many leading records are re-sends (all of
// them means a pure duplicate, reported as dup).
func (ps producerState) checkFromSource(h recordbatch.Header) (dup *producerBatch, skip int, err error) {
	e := ps[h.ProducerID]
	if e == nil || len(e.Batches) == 0 {
		return nil, 0, nil
	}
	if h.ProducerEpoch < e.Epoch {
		return nil, 0, fmt.Errorf("%w: source-sequenced producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	}
	last := e.Batches[len(e.Batches)-1]
	d := seqDistance(last.LastSeq, h.BaseSequence)
	switch {
	case d == 1:
		return nil, 0, nil // next in line
	case d > 1 && h.ProducerEpoch > e.Epoch:
		// A bridge bumps its epoch when it skips records on purpose (the
		// edge dropped them unforwarded): the gap is declared, accept it.
		return nil, 0, nil
	case d > 1:
		// An undeclared gap means an earlier batch was refused: taking this
		// one would make the refused records impossible to deliver.
		return nil, 0, fmt.Errorf("%w: source-sequenced producer %d expected sequence %d, got %d", ErrOutOfOrderSequence, h.ProducerID, nextSeq(last.LastSeq), h.BaseSequence)
	}
	skip = int(1 - d)
	if skip >= int(h.NumRecords) {
		return &last, 0, nil
	}
	return nil, skip, nil
}

// check decides what to do with an idempotent batch: a duplicate of a recent
// batch returns that batch; a gap or stale epoch returns an error.
func (ps producerState) check(h recordbatch.Header) (*producerBatch, error) {
	e := ps[h.ProducerID]
	if e == nil {
		return nil, nil
	}
	if h.ProducerEpoch < e.Epoch {
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.Epoch)
	}
	if h.ProducerEpoch > e.Epoch {
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: producer %d new epoch %d must start at sequence 0, got %d", ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
		}
		return nil, nil
	}
	ls := lastSeq(h)
	for i := range e.Batches {
		if b := e.Batches[i]; b.FirstSeq == h.BaseSequence && b.LastSeq == ls {
			return &b, nil
		}
	}
	if n := len(e.Batches); n > 0 {
		if want := nextSeq(e.Batches[n-1].LastSeq); h.BaseSequence != want {
			return nil, fmt.Errorf("%w: producer %d expected sequence %d, got %d", ErrOutOfOrderSequence, h.ProducerID, want, h.BaseSequence)
		}
	}
	return nil, nil
}

// update records a batch that was written (with its final offsets). A
// per-batch producer starts a new window with each epoch; a source-sequenced
// one keeps its high-water mark across epochs.
func (ps producerState) update(h recordbatch.Header, fromSource bool, nowMs int64) {
	if h.ProducerID < 0 || h.IsControl() {
		return
	}
	e := ps[h.ProducerID]
	if e == nil || (h.ProducerEpoch != e.Epoch && !fromSource) {
		e = &producerEntry{Epoch: h.ProducerEpoch}
		ps[h.ProducerID] = e
	}
	e.FromSource = fromSource
	e.LastMs = nowMs
	e.Epoch = max(e.Epoch, h.ProducerEpoch)
	e.Batches = append(e.Batches, producerBatch{FirstSeq: h.BaseSequence, LastSeq: lastSeq(h), BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), Epoch: h.ProducerEpoch})
	if len(e.Batches) > producerWindow {
		e.Batches = append(e.Batches[:0], e.Batches[len(e.Batches)-producerWindow:]...)
	}
}

// fromSource reports whether pid was last appended in SequenceFromSource
// mode, for the appends and replays that name no mode.
func (ps producerState) fromSource(pid int64) bool {
	e := ps[pid]
	return e != nil && e.FromSource
}

func (ps producerState) clone(pid int64) *producerEntry {
	e := ps[pid]
	if e == nil {
		return nil
	}
	return &producerEntry{Epoch: e.Epoch, Batches: append([]producerBatch(nil), e.Batches...), FromSource: e.FromSource, LastMs: e.LastMs}
}

// expire drops the state of per-batch producers that have not appended for
// maxAge and have no transaction open (keep reports those), as Kafka's
// producer.id.expiration.ms does: every client start takes a new producer
// id, so a long-lived partition would otherwise keep them all. A producer
// coming back after that is treated as new, so a retry of a batch older
// than maxAge is no longer recognised. Source-sequenced producers (one per
// edge) never expire: their high-water mark is what keeps an edge that was
// offline for a week from duplicating what it re-sends.
func (ps producerState) expire(nowMs, maxAgeMs int64, keep func(pid int64) bool) int {
	n := 0
	for pid, e := range ps {
		switch {
		case e.FromSource || keep(pid):
		case e.LastMs == 0:
			e.LastMs = nowMs // from an older snapshot: start its clock now
		case nowMs-e.LastMs > maxAgeMs:
			delete(ps, pid)
			n++
		}
	}
	return n
}

// ExpireProducers applies LogConfig.ProducerExpiry and returns how many
// producers it forgot.
func (l *Log) ExpireProducers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.cfg.ProducerExpiry <= 0 {
		return 0
	}
	return l.producers.expire(time.Now().UnixMilli(), l.cfg.ProducerExpiry.Milliseconds(), func(pid int64) bool {
		_, open := l.txns.open[pid]
		return open
	})
}

type producerSnapshot struct {
	Offset    int64                    `json:"offset"`
	Producers map[int64]*producerEntry `json:"producers"`
}

func writeProducerSnapshot(dir string, offset int64, ps producerState) error {
	b, err := json.Marshal(producerSnapshot{Offset: offset, Producers: ps})
	if err != nil {
		return fmt.Errorf("encode producer snapshot: %w", err)
	}
	return atomicfile.Write(filepath.Join(dir, producerSnapshotFile), b, 0o644)
}

// readProducerSnapshot returns the snapshot, or offset -1 when there is none
// or it cannot be read (the caller then replays the whole log).
func readProducerSnapshot(dir string) (int64, producerState, error) {
	b, err := os.ReadFile(filepath.Join(dir, producerSnapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return -1, producerState{}, nil
	}
	if err != nil {
		return -1, producerState{}, fmt.Errorf("read producer snapshot: %w", err)
	}
	var snap producerSnapshot
	if err := json.Unmarshal(b, &snap); err != nil || snap.Offset < 0 {
		return -1, producerState{}, nil
	}
	if snap.Producers == nil {
		snap.Producers = map[int64]*producerEntry{}
	}
	return snap.Offset, snap.Producers, nil
}

// ProducerInfo is what a partition knows of one idempotent producer: its
// epoch and the last sequence and offset it appended.
type ProducerInfo struct {
	ID           int64
	Epoch        int16
	LastSequence int32
	LastOffset   int64
}

// Producers lists the producers the log holds sequence state for, by id.
// A bridge whose sequences the core refuses asks for this (Kafka's
// DescribeProducers) to find where the core's copy really ends.
func (l *Log) Producers() []ProducerInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]ProducerInfo, 0, len(l.producers))
	for id, e := range l.producers {
		if len(e.Batches) == 0 {
			continue
		}
		last := e.Batches[len(e.Batches)-1]
		out = append(out, ProducerInfo{ID: id, Epoch: e.Epoch, LastSequence: last.LastSeq, LastOffset: last.LastOffset})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SequenceDistance is b-a in the 31-bit sequence space of idempotent
// producers, mapped to (-2^30, 2^30]: negative when b is behind a.
func SequenceDistance(a, b int32) int64 { return seqDistance(a, b) }
