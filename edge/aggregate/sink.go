package aggregate

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// LogSink appends an aggregation's outputs to edge streams (the output
// stream, and the side stream if configured), creating them with the
// source stream's partition count; a record's partition is its key's
// (group's) Kafka hash, as the ingest places device keys.
type LogSink struct {
	Topics *storage.Topics
	// Source is the aggregation's input stream: outputs get as many
	// partitions.
	Source string

	ends map[string]int64 // "stream/partition" → end after the last append since Flush
	logs map[string]*storage.Log
}

func partKey(topic string, p int32) string { return topic + "/" + strconv.Itoa(int(p)) }

// stream returns the output stream's partition count, creating it.
func (s *LogSink) stream(name string) (int32, error) {
	if info, ok := s.Topics.Get(name); ok {
		return info.Partitions, nil
	}
	n := int32(1)
	if info, ok := s.Topics.Get(s.Source); ok {
		n = info.Partitions
	}
	if err := s.Topics.Create(name, n, storage.LogConfig{}); err != nil && !errors.Is(err, storage.ErrTopicExists) {
		return 0, fmt.Errorf("create output stream %s: %w", name, err)
	}
	info, ok := s.Topics.Get(name)
	if !ok {
		return 0, fmt.Errorf("output stream %s missing after create", name)
	}
	return info.Partitions, nil
}

// Write appends outputs (not waiting for the disk: Flush does), one batch
// per run of outputs bound for the same partition, in order.
func (s *LogSink) Write(ctx context.Context, outs []stream.Output) error {
	if s.ends == nil {
		s.ends, s.logs = map[string]int64{}, map[string]*storage.Log{}
	}
	var batch []recordbatch.Record
	var cur *storage.Log
	var curKey string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := recordbatch.Build(batch, recordbatch.NoProducer)
		if err != nil {
			return err
		}
		res, err := cur.Append(ctx, b, storage.AppendOptions{LeaderEpoch: -1})
		if err != nil {
			return fmt.Errorf("append to %s: %w", curKey, err)
		}
		s.ends[curKey] = res.LastOffset + 1
		s.logs[curKey] = cur
		batch = batch[:0]
		return nil
	}
	for i := range outs {
		o := &outs[i]
		n, err := s.stream(o.Topic)
		if err != nil {
			return err
		}
		p := topicmap.Partition(o.Key, n)
		key := partKey(o.Topic, p)
		if key != curKey {
			if err := flush(); err != nil {
				return err
			}
			if cur, err = s.Topics.Partition(o.Topic, p); err != nil {
				return err
			}
			curKey = key
		}
		rec := recordbatch.Record{Timestamp: o.Timestamp, Key: o.Key, Value: o.Value,
			Headers: make([]recordbatch.RecordHeader, len(o.Headers))}
		for j, h := range o.Headers {
			rec.Headers[j] = recordbatch.RecordHeader{Key: h.Key, Value: h.Value}
		}
		batch = append(batch, rec)
	}
	return flush()
}

// Flush waits until every output appended since the last Flush is fsynced
// and returns the ends reached.
func (s *LogSink) Flush(ctx context.Context) (map[string]int64, error) {
	ends := s.ends
	for k, end := range ends {
		if err := s.logs[k].WaitSynced(ctx, end); err != nil {
			return nil, fmt.Errorf("fsync %s: %w", k, err)
		}
	}
	s.ends, s.logs = map[string]int64{}, map[string]*storage.Log{}
	if ends == nil {
		ends = map[string]int64{}
	}
	return ends, nil
}

// IDsSince scans the output streams from the checkpoint's ends (or their
// start) to their end for tributary-stream-id headers.
func (s *LogSink) IDsSince(ctx context.Context, topics []string, from map[string]int64) (map[string]struct{}, error) {
	ids := map[string]struct{}{}
	for _, topic := range topics {
		info, ok := s.Topics.Get(topic)
		if !ok {
			continue // nothing written yet
		}
		for p := int32(0); p < info.Partitions; p++ {
			l, err := s.Topics.Partition(topic, p)
			if err != nil {
				return nil, err
			}
			next := max(from[partKey(topic, p)], l.StartOffset())
			end := l.NextOffset()
			for next < end {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				b, err := l.Read(next, maxReadBytes, end)
				if err != nil {
					return nil, fmt.Errorf("read back %s-%d at %d: %w", topic, p, next, err)
				}
				if len(b) == 0 {
					break
				}
				err = recordbatch.Split(b, func(h recordbatch.Header, batch []byte) error {
					rs, err := recordbatch.Records(batch)
					if err != nil {
						return err
					}
					for _, r := range rs {
						for _, hd := range r.Headers {
							if hd.Key == stream.HeaderID {
								ids[topic+"\x00"+string(r.Key)+"\x00"+string(hd.Value)] = struct{}{}
							}
						}
					}
					next = max(next, h.NextOffset())
					return nil
				})
				if err != nil {
					return nil, fmt.Errorf("read back %s-%d: %w", topic, p, err)
				}
			}
		}
	}
	return ids, nil
}

// Close drops what was not flushed from the bookkeeping; the appended
// records stay in the log (the next run finds them by ID).
func (s *LogSink) Close() { s.ends, s.logs = nil, nil }
