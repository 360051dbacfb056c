package storage

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// epochFile is the leader-epoch checkpoint: for each leader epoch seen in the
// log, the first offset written under it. Replicas use it to find where
// their history diverges from a new leader's (Kafka's KIP-101/279).
const epochFile = "leader-epochs.json"

type epochEntry struct {
	Epoch int32 `json:"epoch"`
	Start int64 `json:"start"`
}

// loadEpochs reads the checkpoint, or rebuilds it from the batch headers when
// it is missing or unreadable, and drops entries past the log end. mu held.
func (l *Log) loadEpochs() error {
	data, err := os.ReadFile(filepath.Join(l.dir, epochFile))
	var entries []epochEntry
	if err == nil && json.Unmarshal(data, &entries) == nil {
		l.epochs = entries
		l.epochsSaved = true
	} else {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("rebuilding unreadable leader-epoch checkpoint", "err", err)
		}
		l.epochs = nil
		if errors.Is(err, os.ErrNotExist) && l.next == l.start {
			// An empty log (a partition just created) has nothing to
			// walk: its checkpoint, and the checkpoint's two fsyncs, wait
			// for its first epoch or its Close. A log that dies before
			// either is walked again at its next open.
			return nil
		}
		if err := l.walkHeaders(l.start, func(h recordbatch.Header) { l.trackEpoch(h.LeaderEpoch, h.BaseOffset) }); err != nil {
			return err
		}
		return l.saveEpochs()
	}
	return l.trimEpochs()
}

// trackEpoch adds an entry when a batch starts a newer epoch; it reports
// whether it did.
func (l *Log) trackEpoch(epoch int32, start int64) {
	if epoch < 0 {
		return
	}
	if n := len(l.epochs); n > 0 && epoch <= l.epochs[n-1].Epoch {
		return
	}
	l.epochs = append(l.epochs, epochEntry{Epoch: epoch, Start: start})
}

// trimEpochs drops entries at or past the log end (after truncation) and
// saves the checkpoint if anything changed. mu held.
func (l *Log) trimEpochs() error {
	n := len(l.epochs)
	for len(l.epochs) > 0 && l.epochs[len(l.epochs)-1].Start >= l.next {
		l.epochs = l.epochs[:len(l.epochs)-1]
	}
	if len(l.epochs) == n {
		return nil
	}
	return l.saveEpochs()
}

func (l *Log) saveEpochs() error {
	data, err := json.Marshal(l.epochs)
	if err != nil {
		return fmt.Errorf("encode leader epochs: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(l.dir, epochFile), data, 0o644); err != nil {
		return err
	}
	l.epochsSaved = true
	return nil
}

// LatestEpoch is the newest leader epoch in the log, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if n := len(l.epochs); n > 0 {
		return l.epochs[n-1].Epoch
	}
	return -1
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch in the
// log that is <= epoch, and the offset where it ended (the start of the next
// epoch, or the log end for the latest). An epoch older than every one the
// log knows (their records gone below the log start) ended where the first
// known one starts, as Kafka's epoch cache answers. (-1, -1) means the log
// knows no epoch, or epoch is negative.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := len(l.epochs) - 1; i >= 0; i-- {
		if l.epochs[i].Epoch <= epoch {
			if i == len(l.epochs)-1 {
				return l.epochs[i].Epoch, l.next
			}
			return l.epochs[i].Epoch, l.epochs[i+1].Start
		}
	}
	if len(l.epochs) > 0 && epoch >= 0 {
		return epoch, l.epochs[0].Start
	}
	return -1, -1
}
