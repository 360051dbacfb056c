package storage

import (
	"errors"
	"fmt"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// ReadRecords returns l's data records in [from, to), for the pages that
// show a partition's newest records (the core's console, the edge's tail
// API). It steps over damaged ranges (they are reported in /healthz) and
// starts again at the log start when retention removed from meanwhile.
func ReadRecords(l LogTail, from, to int64) ([]recordbatch.Record, error) {
	var out []recordbatch.Record
	for from < to {
		b, err := l.Read(from, 1<<20, to)
		var corrupt *CorruptError
		switch {
		case errors.As(err, &corrupt):
			from = corrupt.To
			continue
		case errors.Is(err, ErrOffsetOutOfRange):
			if from = l.StartOffset(); from >= to {
				return out, nil
			}
			continue
		case err != nil:
			return nil, fmt.Errorf("read at %d: %w", from, err)
		case len(b) == 0:
			return out, nil
		}
		next, err := recordbatch.RecordsFrom(b, from, func(r recordbatch.Record) {
			if r.Offset < to {
				out = append(out, r)
			}
		})
		if err != nil {
			return nil, err
		}
		if next == from {
			return out, nil // nothing readable moved us on
		}
		from = next
	}
	return out, nil
}
