package ingest

import (
	"fmt"
	"time"

	"github.com/tributary-io/tributary/edge/dedup"
	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// rebuildDedup refills the re-send window from the end of every reading
// stream's partitions, so a device re-sending what it published just before
// a crash is recognised after the restart. At most Dedup.TailBytes are read
// per partition (the start offset is estimated from the partition's average
// record size, since the log has no byte-to-offset lookup).
func (h *Hook) rebuildDedup() {
	start := time.Now()
	records := 0
	for _, t := range h.topics.List() {
		if h.isDeadLetter(t.Name) {
			continue
		}
		for p := int32(0); p < t.Partitions; p++ {
			l, err := h.topics.Partition(t.Name, p)
			if err != nil {
				h.log.Warn("dedup rebuild: open partition", "stream", t.Name, "partition", p, "err", err)
				continue
			}
			n, err := h.rebuildFrom(t.Name, l)
			records += n
			if err != nil {
				// The window is an optimisation against duplicates; a partial
				// one only means some re-sends are stored twice.
				h.log.Warn("dedup rebuild: partition tail unreadable", "stream", t.Name, "partition", p, "err", err)
			}
		}
	}
	if records > 0 {
		h.log.Info("dedup window rebuilt from log tails", "records", records, "devices", h.dedup.Keys(),
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// rebuildFrom adds the (seq, ts) of the last TailBytes of l to the window.
func (h *Hook) rebuildFrom(stream string, l storage.LogTail) (int, error) {
	n := 0
	err := forTail(l, h.cfg.Dedup.TailBytes, func(r recordbatch.Record) {
		if rd, ok := storedReading(r); ok {
			h.dedup.Add(dedup.Key(stream, rd.Device), rd.Seq, rd.TimeMs)
			n++
		} else if seq, ts, ok := h.storedRuleSeq(r); ok {
			h.dedup.Add(dedup.Key(stream, string(r.Key)), seq, ts)
			n++
		}
	})
	return n, err
}

// forTail calls fn for each record of about the last tail bytes of l, in
// log order (the start offset is estimated from the partition's average
// record size, since the log has no byte-to-offset lookup).
func forTail(l storage.LogTail, tail int64, fn func(recordbatch.Record)) error {
	first, end := l.StartOffset(), l.NextOffset()
	if end <= first {
		return nil
	}
	from := first
	if size := l.Size(); size > tail {
		perRecord := max(1, size/(end-first))
		from = max(first, end-tail/perRecord)
	}
	read := int64(0)
	for from < end && read < 2*tail { // the estimate may be off; bound the work anyway
		b, err := l.Read(from, 1<<20, -1)
		if err != nil {
			return fmt.Errorf("read at %d: %w", from, err)
		}
		if len(b) == 0 {
			break
		}
		read += int64(len(b))
		err = recordbatch.Split(b, func(hd recordbatch.Header, batch []byte) error {
			from = hd.NextOffset()
			recs, err := recordbatch.Records(batch)
			if err != nil {
				return fmt.Errorf("batch at %d: %w", hd.BaseOffset, err)
			}
			for _, r := range recs {
				fn(r)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// storedReading decodes a stored record's payload as the hook did when it
// appended it.
func storedReading(r recordbatch.Record) (payload.Reading, bool) {
	ct, _ := header(r, HeaderContentType)
	rd, err := payload.Decode(string(ct), r.Value)
	if err != nil || !rd.HasTime || rd.Device != string(r.Key) {
		return rd, false
	}
	return rd, true
}

// header returns the value of rec's header key (the last, if repeated).
func header(rec recordbatch.Record, key string) ([]byte, bool) {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == key {
			return rec.Headers[i].Value, true
		}
	}
	return nil, false
}

// storedRuleSeq reads the (seq, device time) of a stored record whose
// rule takes both from the payload (seq and time.field), as the hook did
// when it appended it.
func (h *Hook) storedRuleSeq(rec recordbatch.Record) (seq uint64, ts int64, ok bool) {
	topic, _ := header(rec, HeaderMQTTTopic)
	ct, _ := header(rec, HeaderContentType)
	var c rules.Captures
	r := h.rules.Match(string(topic), &c)
	if r == nil || !r.HasSeq || !r.HasTimeField {
		return 0, 0, false
	}
	var d decoded
	switch string(ct) {
	case payload.ContentJSON:
		d.jsonDoc = rec.Value
	case payload.ContentCBOR:
		v, err := payload.CBORValue(rec.Value, &r.Limits)
		if err != nil {
			return 0, 0, false
		}
		d.isCBOR, d.cborDoc = true, v
	default:
		return 0, 0, false
	}
	if h.fields(r, &d) != nil || !d.hasSeq || !d.hasTime {
		return 0, 0, false
	}
	return d.seq, d.timeMs, true
}
