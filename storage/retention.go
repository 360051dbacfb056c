package storage

import (
	"fmt"
	"time"
)

// ApplyRetention deletes whole sealed segments past the age or size bound,
// oldest first, never the active one and never one holding an offset at or
// above the retention floor. An aged, non-empty active segment is rolled
// first so that idle logs expire too. It returns how many records went.
func (l *Log) ApplyRetention() (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.readOnly != nil {
		return 0, nil
	}
	if l.cfg.RetentionAge > 0 || l.cfg.SegmentAge > 0 {
		a := l.active()
		age := l.cfg.SegmentAge
		if age <= 0 || (l.cfg.RetentionAge > 0 && l.cfg.RetentionAge < age) {
			age = l.cfg.RetentionAge
		}
		if a.size > 0 && time.Since(a.created) >= age {
			if err := l.roll(l.next); err != nil {
				return 0, err
			}
		}
	}
	var total int64
	for _, s := range l.segments {
		total += s.size
	}
	floor := l.floor.Load()
	now := time.Now().UnixMilli()
	var dropped int64
	for len(l.segments) > 1 {
		s := l.segments[0]
		if s.next > floor {
			break
		}
		// Old by its timestamps and by when it was written: a device whose
		// clock runs days behind must not have its readings deleted on
		// arrival.
		tooOld := l.cfg.RetentionAge > 0 && s.maxTS >= 0 && now-s.maxTS > l.cfg.RetentionAge.Milliseconds() &&
			time.Since(s.appended) > l.cfg.RetentionAge
		tooBig := l.cfg.RetentionBytes > 0 && total > l.cfg.RetentionBytes
		if !tooOld && !tooBig {
			break
		}
		d, err := l.dropFirst()
		if err != nil {
			return dropped, err
		}
		dropped += d.Records
		total -= s.size
	}
	return dropped, nil
}

// Dropped describes records removed from the start of a log: Records of
// them, at offsets [From, To) (fewer than To-From in a compacted log).
type Dropped struct {
	Records  int64
	From, To int64
}

// DropOldestSegment removes the oldest sealed segment regardless of the
// retention floor (disk budget "drop-oldest"), returning what it removed
// (nothing when only the active segment is left: it is never removed).
func (l *Log) DropOldestSegment() (Dropped, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Dropped{}, ErrClosed
	}
	if len(l.segments) < 2 {
		return Dropped{}, nil
	}
	return l.dropFirst()
}

// OldestSegmentInfo reports the oldest segment's max timestamp and size, and
// whether it could be dropped (it is sealed), so a caller balancing a disk
// budget over many logs can pick the oldest data first.
func (l *Log) OldestSegmentInfo() (maxTimestamp int64, size int64, droppable bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || len(l.segments) < 2 {
		return 0, 0, false
	}
	s := l.segments[0]
	return s.maxTS, s.size, true
}

// dropFirst removes the first segment. mu held, at least two segments.
func (l *Log) dropFirst() (Dropped, error) {
	s := l.segments[0]
	d := Dropped{Records: s.records, From: l.start, To: l.segments[1].base}
	if err := s.remove(); err != nil {
		return Dropped{}, fmt.Errorf("remove segment %s: %w", s.path, err)
	}
	l.segments = l.segments[1:]
	l.start = max(l.start, l.segments[0].base) // DeleteRecords may have moved it further
	l.recount()
	l.logger.Info("removed segment", "segment", s.path, "records", d.Records, "from_offset", d.From, "to_offset", d.To, "bytes", s.size)
	return d, nil
}
