package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// maxReadBytes bounds what one Poll reads from one partition.
const maxReadBytes = 1 << 20

// LogSource reads an edge stream's partition logs for a Runner: only
// fsynced records (as the bridge forwards them), waiting on the logs'
// fsync signal when caught up.
type LogSource struct {
	Topics *storage.Topics
	Stream string
	// PollWait bounds how long Poll waits when there is nothing new, so
	// the runner gets to checkpoint and mark partitions idle.
	PollWait time.Duration
	Logger   *slog.Logger

	parts []int32
	logs  map[int32]*storage.Log
	next  map[int32]int64
	recs  []stream.Record
}

// Partitions lists the stream's partitions. A stream that does not exist
// yet (the first publish creates it) is waited for.
func (s *LogSource) Partitions(ctx context.Context) ([]int32, error) {
	logged := false
	for {
		if info, ok := s.Topics.Get(s.Stream); ok {
			ps := make([]int32, info.Partitions)
			for i := range ps {
				ps[i] = int32(i)
			}
			return ps, nil
		}
		if !logged {
			s.Logger.Info("waiting for the source stream to be created", "stream", s.Stream)
			logged = true
		}
		if !tick.Sleep(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

// Start positions every partition at from[p], else at the log's start.
func (s *LogSource) Start(_ context.Context, partitions []int32, from map[int32]int64) error {
	s.parts = partitions
	s.logs = map[int32]*storage.Log{}
	s.next = map[int32]int64{}
	for _, p := range partitions {
		l, err := s.Topics.Partition(s.Stream, p)
		if err != nil {
			return err
		}
		s.logs[p] = l
		if o, ok := from[p]; ok {
			s.next[p] = o
		} else {
			s.next[p] = l.StartOffset()
		}
	}
	return nil
}

// Poll returns the fsynced records past each partition's position,
// waiting up to PollWait for some.
func (s *LogSource) Poll(ctx context.Context, ends map[int32]int64) ([]stream.Record, error) {
	if s.logs == nil {
		return nil, errors.New("source not started")
	}
	wait := s.PollWait
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	out := s.recs[:0]
	defer func() { s.recs = out[:0] }()
	for {
		cases := make([]reflect.SelectCase, 0, len(s.parts)+2)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		for _, p := range s.parts {
			l := s.logs[p]
			// Taken before SyncedOffset, so no fsync in between is missed.
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(l.Synced())})
			synced := l.SyncedOffset()
			ends[p] = synced
			var err error
			if out, err = s.read(p, l, synced, out); err != nil {
				return nil, err
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		chosen, _, _ := reflect.Select(cases)
		switch chosen {
		case 0:
			return nil, ctx.Err()
		case 1:
			return out, nil
		}
	}
}

// read appends partition p's records in [next, synced) to out.
func (s *LogSource) read(p int32, l storage.LogTail, synced int64, out []stream.Record) ([]stream.Record, error) {
	next := s.next[p]
	for next < synced {
		b, err := l.Read(next, maxReadBytes, synced)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			if start := l.StartOffset(); next < start {
				// Retention or the disk budget removed records before the
				// aggregation read them (it was stopped, or lagging past
				// the stream's retention): they are gone, carry on.
				s.Logger.Warn("source records removed before they were aggregated", "stream", s.Stream,
					"partition", p, "from", next, "to", start-1)
				next = start
				continue
			}
		}
		if err != nil {
			return out, fmt.Errorf("read %s-%d at %d: %w", s.Stream, p, next, err)
		}
		if len(b) == 0 {
			break
		}
		next, err = recordbatch.RecordsFrom(b, next, func(r recordbatch.Record) {
			rec := stream.Record{Topic: s.Stream, Partition: p, Offset: r.Offset, Key: r.Key, Value: r.Value,
				Timestamp: r.Timestamp}
			if len(r.Headers) > 0 {
				rec.Headers = make([]stream.Header, len(r.Headers))
				for j, hd := range r.Headers {
					rec.Headers[j] = stream.Header{Key: hd.Key, Value: hd.Value}
				}
			}
			out = append(out, rec)
		})
		if err != nil {
			return out, fmt.Errorf("decode %s-%d at %d: %w", s.Stream, p, next, err)
		}
		if len(out) >= 50_000 {
			break
		}
	}
	s.next[p] = next
	return out, nil
}

// Close forgets the logs (the gateway owns them).
func (s *LogSource) Close() { s.logs = nil }
