package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Compact rewrites the sealed segments of a compacted log so that only the
// newest record per key survives. Tombstones (nil values) older than
// TombstoneRetention go too. Offsets keep their gaps, as in Kafka: every
// surviving record keeps its offset and each rewritten batch keeps its base
// offset and last offset delta. The active segment is never rewritten, so
// NextOffset does not move. Appends wait while it runs.
func (l *Log) Compact() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.readOnly != nil || l.cfg.Cleanup != CleanupCompact || len(l.segments) < 2 {
		return nil
	}
	latest := map[string]int64{}
	for _, s := range l.segments {
		if err := s.eachBatch(func(h recordbatch.Header, b []byte) error {
			if aborted, open := l.txnFate(h); h.IsControl() || aborted || open {
				return nil // aborted records are dropped; open ones kept below
			}
			recs, err := recordbatch.Records(b)
			if err != nil {
				return err
			}
			for _, r := range recs {
				if r.Key != nil {
					latest[string(r.Key)] = r.Offset
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("compact %s: %w", l.dir, err)
		}
	}
	horizon := time.Now().Add(-l.cfg.TombstoneRetention).UnixMilli()
	for i, s := range l.segments[:len(l.segments)-1] {
		ns, err := l.rewriteSegment(s, latest, horizon)
		if err != nil {
			return fmt.Errorf("compact %s: %w", s.path, err)
		}
		if ns != nil {
			l.segments[i] = ns
		}
	}
	l.recount()
	return nil
}

// eachBatch calls fn with every batch of the segment, read in one pass.
func (s *segment) eachBatch(fn func(recordbatch.Header, []byte) error) error {
	var pos int64
	for pos < s.size {
		h, err := s.header(pos)
		if err != nil {
			return err
		}
		b := make([]byte, h.Size())
		if err := s.readAt(b, pos); err != nil {
			return err
		}
		if err := fn(h, b); err != nil {
			return fmt.Errorf("batch at %s:%d: %w", s.path, pos, err)
		}
		pos += int64(h.Size())
	}
	return nil
}

// rewriteSegment writes the surviving records of s to a new file and swaps it
// in. It returns nil when nothing would change.
func (l *Log) rewriteSegment(s *segment, latest map[string]int64, horizon int64) (*segment, error) {
	var out []byte
	changed := false
	err := s.eachBatch(func(h recordbatch.Header, b []byte) error {
		if _, open := l.txnFate(h); h.IsControl() || open {
			out = append(out, b...)
			return nil
		}
		recs, err := recordbatch.Records(b)
		if err != nil {
			return err
		}
		var keep []recordbatch.Record
		for _, r := range recs {
			if r.Key != nil && latest[string(r.Key)] != r.Offset {
				continue
			}
			if r.Key != nil && r.Value == nil && r.Timestamp < horizon {
				continue
			}
			keep = append(keep, r)
		}
		switch {
		case len(keep) == len(recs):
			out = append(out, b...)
		case len(keep) == 0:
			changed = true
		default:
			changed = true
			nb, err := rebuildBatch(h, keep)
			if err != nil {
				return err
			}
			out = append(out, nb...)
		}
		return nil
	})
	if err != nil || !changed {
		return nil, err
	}
	tmp := s.path + ".cleaned"
	if err := atomicfile.Write(tmp, out, 0o644); err != nil {
		return nil, err
	}
	// The rename is the commit point: a crash before it leaves the old
	// segment (the .cleaned file is removed on open), after it the new one.
	if err := os.Rename(tmp, s.path); err != nil {
		return nil, fmt.Errorf("swap compacted segment: %w", err)
	}
	s.close()
	f, err := os.OpenFile(s.path, os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("reopen compacted segment: %w", err)
	}
	ns := &segment{base: s.base, path: s.path, f: f, next: s.base, maxTS: -1, created: s.created, appended: s.appended, indexEvery: s.indexEvery, dense: false}
	if res, err := ns.scan(); err != nil || res.badErr != nil {
		return nil, fmt.Errorf("rescan compacted segment: %w", firstErr(err, res.badErr))
	}
	// A segment keeps its offset span even if its last batches went.
	ns.next = max(ns.next, s.next)
	ns.maxTS = max(ns.maxTS, s.maxTS)
	ns.sealed = true
	if err := ns.writeIndexes(); err != nil {
		return nil, err
	}
	return ns, atomicfile.SyncDir(l.dir)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// rebuildBatch encodes the kept records of a batch as a new batch with the
// same base offset, last offset delta, timestamps, producer fields and codec.
func rebuildBatch(h recordbatch.Header, keep []recordbatch.Record) ([]byte, error) {
	var raw []byte
	for _, r := range keep {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - h.FirstTimestamp,
			OffsetDelta:      int32(r.Offset - h.BaseOffset),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, hd := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: hd.Key, Value: hd.Value})
		}
		body := kr.AppendTo(nil)[1:] // encoded with Length 0: one varint byte
		kr.Length = int32(len(body))
		raw = kr.AppendTo(raw)
	}
	codec := h.Compression()
	if codec != recordbatch.CompressionNone {
		var err error
		if raw, err = recordbatch.Compress(codec, raw); err != nil {
			return nil, err
		}
	}
	b := kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		PartitionLeaderEpoch: h.LeaderEpoch,
		Magic:                2,
		Attributes:           h.Attributes,
		LastOffsetDelta:      h.LastOffsetDelta,
		FirstTimestamp:       h.FirstTimestamp,
		MaxTimestamp:         h.MaxTimestamp,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(keep)),
		Records:              raw,
	}
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-recordbatch.LogOverhead))
	recordbatch.SetCRC(out)
	return out, nil
}
