package storage

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Transactions in the log (KIP-98). A transactional producer's batches carry
// the transactional bit; the coordinator ends each transaction on a partition
// with a control batch (a commit or abort marker). From the batch headers the
// log derives what read_committed consumers need:
//
//   - the first offset of every open transaction, so the last stable offset
//     (LSO) — below which every transaction is decided — can be computed;
//   - the aborted transactions (producer id, first offset, marker offset),
//     which a fetch returns so the client can drop aborted records itself.
//
// Like the producer state, this index is rebuilt from a snapshot plus the
// batches after it, so it can never disagree with the data.

const txnSnapshotFile = "txns.snapshot"

// AbortedTxn is one aborted transaction on a partition: its producer, its
// first data offset and the offset of its abort marker.
type AbortedTxn struct {
	ProducerID  int64 `json:"pid"`
	FirstOffset int64 `json:"first"`
	LastOffset  int64 `json:"last"`
}

// endedTxn is a transaction whose marker is written but may still be above
// the high watermark: it keeps the LSO down until the marker is stable.
type endedTxn struct {
	first, marker int64
}

type txnIndex struct {
	open    map[int64]int64 // producer id → first offset of its open transaction
	ended   []endedTxn      // by marker offset
	aborted []AbortedTxn    // by LastOffset
	// stable is the highest high watermark LastStableOffset was asked
	// with: ended transactions whose marker is below it are dropped at the
	// next append (a partition of small transactions would otherwise keep
	// one entry per transaction until its segment rolls).
	stable *atomic.Int64
}

func newTxnIndex() txnIndex { return txnIndex{open: map[int64]int64{}, stable: new(atomic.Int64)} }

// track applies one written batch (b starts with it). mu held.
func (l *Log) trackTxn(h recordbatch.Header, b []byte) {
	if !h.IsTransactional() || h.ProducerID < 0 {
		return
	}
	t := &l.txns
	if !h.IsControl() {
		if _, ok := t.open[h.ProducerID]; !ok {
			t.open[h.ProducerID] = h.BaseOffset
		}
		return
	}
	typ, err := recordbatch.ParseControl(b[:h.Size()])
	if err != nil {
		l.logger.Warn("unreadable control batch", "offset", h.BaseOffset, "err", err)
		return
	}
	// A marker from a newer epoch fences the producer's older epoch here,
	// even before it writes again (a coordinator that aborts a timed-out
	// transaction bumps the epoch).
	if e := l.producers[h.ProducerID]; e != nil && h.ProducerEpoch > e.Epoch {
		e.Epoch, e.Batches = h.ProducerEpoch, nil
	}
	first, ok := t.open[h.ProducerID]
	if !ok {
		return // a marker for a transaction with no data here
	}
	delete(t.open, h.ProducerID)
	if hw := t.stable.Load(); len(t.ended) > 0 && t.ended[0].marker < hw {
		i := sort.Search(len(t.ended), func(i int) bool { return t.ended[i].marker >= hw })
		t.ended = append(t.ended[:0], t.ended[i:]...)
	}
	t.ended = append(t.ended, endedTxn{first: first, marker: h.BaseOffset})
	if typ == recordbatch.ControlAbort {
		t.aborted = append(t.aborted, AbortedTxn{ProducerID: h.ProducerID, FirstOffset: first, LastOffset: h.BaseOffset})
	}
}

// LastStableOffset is the offset below which every transaction is decided
// and its marker is below hw (the high watermark), never above hw.
func (l *Log) LastStableOffset(hw int64) int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	t := &l.txns
	if hw > t.stable.Load() {
		t.stable.Store(hw) // a hint: racing stores may lower it, never past a real HW
	}
	lso := hw
	for _, first := range t.open {
		lso = min(lso, first)
	}
	i := sort.Search(len(t.ended), func(i int) bool { return t.ended[i].marker >= hw })
	for _, e := range t.ended[i:] {
		lso = min(lso, e.first)
	}
	return lso
}

// AbortedTxns lists the aborted transactions that may have records in
// [from, upTo): those whose marker is at or after from and whose first
// offset is below upTo.
func (l *Log) AbortedTxns(from, upTo int64) []AbortedTxn {
	l.mu.RLock()
	defer l.mu.RUnlock()
	a := l.txns.aborted
	i := sort.Search(len(a), func(i int) bool { return a[i].LastOffset >= from })
	var out []AbortedTxn
	for ; i < len(a); i++ {
		if a[i].FirstOffset < upTo {
			out = append(out, a[i])
		}
	}
	return out
}

// OpenTxns is the first offset of every open transaction, by producer id.
func (l *Log) OpenTxns() map[int64]int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make(map[int64]int64, len(l.txns.open))
	for pid, first := range l.txns.open {
		out[pid] = first
	}
	return out
}

type txnSnapshot struct {
	Offset  int64           `json:"offset"`
	Open    map[int64]int64 `json:"open"`
	Aborted []AbortedTxn    `json:"aborted"`
}

// saveTxns writes the index as of offset (every batch below it tracked),
// dropping aborted transactions retention has removed. mu held.
func (l *Log) saveTxns(offset int64) {
	t := &l.txns
	i := sort.Search(len(t.aborted), func(i int) bool { return t.aborted[i].LastOffset >= l.start })
	t.aborted = append(t.aborted[:0], t.aborted[i:]...)
	t.ended = nil // stable by the time anyone reads the snapshot back
	b, err := json.Marshal(txnSnapshot{Offset: offset, Open: t.open, Aborted: t.aborted})
	if err == nil {
		err = atomicfile.Write(filepath.Join(l.dir, txnSnapshotFile), b, 0o644)
	}
	if err != nil {
		l.logger.Warn("transaction snapshot not written", "err", err)
	}
}

// loadTxns restores the index from its snapshot and the batches after it;
// from scratch when there is no usable snapshot. mu held (or not yet shared).
func (l *Log) loadTxns(useSnapshot bool) error {
	l.txns = newTxnIndex()
	from := l.start
	if useSnapshot {
		if snap, ok := readTxnSnapshot(l.dir); ok && snap.Offset >= l.start && snap.Offset <= l.next {
			from = snap.Offset
			if snap.Open != nil {
				l.txns.open = snap.Open
			}
			l.txns.aborted = snap.Aborted
		}
	} else {
		os.Remove(filepath.Join(l.dir, txnSnapshotFile))
	}
	return l.walkTxnBatches(from)
}

func readTxnSnapshot(dir string) (txnSnapshot, bool) {
	var snap txnSnapshot
	b, err := os.ReadFile(filepath.Join(dir, txnSnapshotFile))
	if err != nil || json.Unmarshal(b, &snap) != nil {
		return snap, false
	}
	return snap, true
}

// walkTxnBatches tracks every transactional batch from offset on; only
// control batches are read beyond their header.
func (l *Log) walkTxnBatches(from int64) error {
	return l.walkBatches(from, func(s *segment, pos int64, h recordbatch.Header) error {
		if !h.IsTransactional() {
			return nil
		}
		var b []byte
		if h.IsControl() {
			b = make([]byte, h.Size())
			if err := s.readAt(b, pos); err != nil {
				return fmt.Errorf("read control batch in %s at %d: %w", s.path, pos, err)
			}
		}
		l.trackTxn(h, b)
		return nil
	})
}

// txnFate says whether a transactional data batch belongs to an aborted
// transaction or to one still open; compaction drops the first and keeps
// the second untouched. mu held.
func (l *Log) txnFate(h recordbatch.Header) (aborted, open bool) {
	if !h.IsTransactional() || h.IsControl() || h.ProducerID < 0 {
		return false, false
	}
	if first, ok := l.txns.open[h.ProducerID]; ok && h.BaseOffset >= first {
		return false, true
	}
	for _, a := range l.txns.aborted {
		if a.ProducerID == h.ProducerID && h.BaseOffset >= a.FirstOffset && h.BaseOffset < a.LastOffset {
			return true, false
		}
	}
	return false, false
}
