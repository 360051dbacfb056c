package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tributary-io/tributary/internal/atomicfile"
)

// logStartFile checkpoints a log start offset that is not a segment
// boundary (moved by DeleteRecords), as Kafka's log-start-offset-checkpoint.
const logStartFile = "log-start-offset"

// DeleteRecordsBefore makes offset the log start offset (Kafka's
// DeleteRecords): records below it are no longer served, whole segments
// below it are removed at once and the rest of a straddling segment when
// retention removes that segment. The new start survives a restart. It
// returns the log start offset afterwards (unchanged when offset is at or
// below it); an offset beyond the log end is ErrOffsetOutOfRange.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if offset > l.next || offset < 0 {
		return l.start, fmt.Errorf("%w: delete records before %d, log is [%d, %d]", ErrOffsetOutOfRange, offset, l.start, l.next)
	}
	if offset <= l.start {
		return l.start, nil
	}
	if err := atomicfile.Write(filepath.Join(l.dir, logStartFile), []byte(strconv.FormatInt(offset, 10)), 0o644); err != nil {
		return l.start, fmt.Errorf("delete records before %d: %w", offset, err)
	}
	l.start = offset
	// Whole segments below the new start go now (never the active one).
	for len(l.segments) > 1 && l.segments[1].base <= offset {
		if _, err := l.dropFirst(); err != nil {
			return l.start, fmt.Errorf("delete records before %d: %w", offset, err)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	return l.start, nil
}

// loadLogStart raises l.start to the checkpointed start when it lies inside
// the log (mu held or the log not yet shared). A checkpoint outside the log
// (the log was reset or truncated under it) is stale and ignored.
func (l *Log) loadLogStart() error {
	b, err := os.ReadFile(filepath.Join(l.dir, logStartFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read log start offset: %w", err)
	}
	off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		l.logger.Warn("ignoring unreadable log start offset checkpoint", "err", err)
		return nil
	}
	if off > l.start && off <= l.next {
		l.start = off
	}
	return nil
}
