package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/meta"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Header names of the stored record (the shared schema).
const (
	HeaderContentType = "content-type"
	HeaderDevice      = "device"
)

// ObserveRecord decodes one stored record and observes the reading in it.
// Records that are not numbered readings are counted, not judged.
func (c *Checker) ObserveRecord(partition int32, offset int64, key, value []byte, contentType string) {
	r, err := reading.Decode(contentType, value)
	switch {
	case errors.Is(err, reading.ErrNotReading):
		c.NotReadings++
		return
	case err != nil:
		c.Undecodable++
		return
	}
	if key != nil && string(key) != r.Device {
		c.KeyMismatch++
	}
	c.Observe(Observation{Device: r.Device, Seq: r.Seq, Partition: partition, Offset: offset})
}

// KafkaOptions say where to consume from.
type KafkaOptions struct {
	Brokers []string
	Topic   string
	// StartOffset: -2 (default) the log start, -1 the log end, otherwise
	// this offset in every partition. StartTime, if set, wins.
	StartOffset int64
	StartTime   time.Time
	// Idle ends a summary-less check once nothing new arrived for this long
	// and every partition read is caught up (default 2 s).
	Idle time.Duration
	// Progress, if set, gets a line every ProgressEvery (default 5 s) while
	// the consume runs, so a long wait for missing readings is visible.
	Progress      io.Writer
	ProgressEvery time.Duration
	Logger        *slog.Logger
}

// ConsumeStats describe a consume.
type ConsumeStats struct {
	Records  int64
	Complete bool // every required reading seen (summary mode)
}

// ConsumeKafka feeds c from a topic until c is complete and every partition
// has been read up to its high watermark (so late duplicates are seen too),
// or, without a summary, until caught up and idle; or until ctx ends, which
// is not an error: the report says what was missing.
func ConsumeKafka(ctx context.Context, o KafkaOptions, c *Checker) (ConsumeStats, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Idle <= 0 {
		o.Idle = 2 * time.Second
	}
	start := kgo.NewOffset().AtStart()
	switch {
	case !o.StartTime.IsZero():
		start = kgo.NewOffset().AfterMilli(o.StartTime.UnixMilli())
	case o.StartOffset == -1:
		start = kgo.NewOffset().AtEnd()
	case o.StartOffset >= 0:
		start = kgo.NewOffset().At(o.StartOffset)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(o.Brokers...),
		kgo.ConsumeTopics(o.Topic),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return ConsumeStats{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	var st ConsumeStats
	pos := map[int32]int64{} // next offset to read
	hwm := map[int32]int64{}
	caughtUp := func() bool {
		for p, h := range hwm {
			if pos[p] < h {
				return false
			}
		}
		return len(hwm) > 0
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 5 * time.Second
	}
	lastErr, lastProgress, began := time.Time{}, time.Now(), time.Now()
	for ctx.Err() == nil {
		if o.Progress != nil && time.Since(lastProgress) >= o.ProgressEvery {
			lastProgress = time.Now()
			fmt.Fprintf(o.Progress, "%5.0fs consumed %d records", time.Since(began).Seconds(), st.Records)
			if c.expected != nil {
				fmt.Fprintf(o.Progress, ", %d readings still missing", c.missing)
			}
			fmt.Fprintln(o.Progress)
		}
		pollCtx, cancel := context.WithTimeout(ctx, o.Idle)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		got := 0
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err != nil {
				return
			}
			hwm[p.Partition] = max(hwm[p.Partition], p.HighWatermark)
			for _, r := range p.Records {
				got++
				ct := ""
				for _, h := range r.Headers {
					if h.Key == HeaderContentType {
						ct = string(h.Value)
					}
				}
				c.ObserveRecord(r.Partition, r.Offset, r.Key, r.Value, ct)
				pos[r.Partition] = r.Offset + 1
			}
		})
		st.Records += int64(got)
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) || errors.Is(fe.Err, context.Canceled) {
				continue
			}
			// The client retries by itself; say so now and then, not per poll.
			if time.Since(lastErr) > 5*time.Second {
				o.Logger.Warn("fetch error", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
				lastErr = time.Now()
			}
		}
		if c.Complete() && caughtUp() {
			st.Complete = true
			break
		}
		// Without totals to reach, an idle poll ends the check: either
		// everything was read, or there was nothing to read.
		if c.expected == nil && got == 0 && (caughtUp() || len(hwm) == 0) {
			break
		}
	}
	st.Complete = c.Complete()
	return st, nil
}

// ReadLogs feeds c from the partition logs of a stopped node's data
// directory (an edge's or a core's: dir/meta.db and dir/logs).
func ReadLogs(dir, topic string, c *Checker, logger *slog.Logger) (int64, error) {
	if logger == nil {
		logger = slog.Default()
	}
	store, err := meta.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		// bbolt's file lock: a running node holds it.
		return 0, fmt.Errorf("open metadata in %s (stop the node first: its logs are read while it is down): %w", dir, err)
	}
	defer store.Close()
	topics, err := storage.OpenTopics(filepath.Join(dir, "logs"), store, storage.LogConfig{}, logger)
	if err != nil {
		return 0, fmt.Errorf("open logs in %s: %w", dir, err)
	}
	defer topics.Close()
	info, ok := topics.Get(topic)
	if !ok {
		return 0, fmt.Errorf("stream %q: %w in %s", topic, storage.ErrUnknownTopic, dir)
	}
	var n int64
	for p := range info.Partitions {
		l, err := topics.Partition(topic, p)
		if err != nil {
			return n, fmt.Errorf("partition %d: %w", p, err)
		}
		if reason := l.ReadOnlyReason(); reason != nil {
			logger.Warn("partition is read-only after recovery", "partition", p, "err", reason)
		}
		k, err := readLog(l, p, c)
		n += k
		if err != nil {
			return n, fmt.Errorf("read %s-%d: %w", topic, p, err)
		}
	}
	return n, nil
}

// readChunk is how many bytes one Read asks for (tests make it small).
var readChunk = 1 << 20

func readLog(l storage.LogTail, partition int32, c *Checker) (int64, error) {
	var n int64
	from, end := l.StartOffset(), l.NextOffset()
	for from < end {
		b, err := l.Read(from, readChunk, -1)
		if err != nil {
			return n, err
		}
		if len(b) == 0 {
			break
		}
		next, err := recordbatch.RecordsFrom(b, from, func(r recordbatch.Record) {
			ct := ""
			for _, h := range r.Headers {
				if h.Key == HeaderContentType {
					ct = string(h.Value)
				}
			}
			c.ObserveRecord(partition, r.Offset, r.Key, r.Value, ct)
			n++
		})
		if err != nil {
			return n, err
		}
		if next <= from {
			return n, fmt.Errorf("no progress reading at offset %d", from)
		}
		from = next
	}
	return n, nil
}
