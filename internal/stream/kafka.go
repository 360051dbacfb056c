package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/tick"
)

// The Kafka side of a Runner, with franz-go: it works against a Tributary
// core or any Kafka cluster, needing no transactions.

// KafkaSource consumes one topic's partitions at explicit offsets (no
// consumer group: the checkpoint owns the offsets).
type KafkaSource struct {
	Brokers []string
	Topic   string
	// PollWait bounds how long Poll waits for records, so the runner gets
	// to checkpoint and mark partitions idle on a quiet topic.
	PollWait time.Duration
	Logger   *slog.Logger

	cl   *kgo.Client
	recs []Record // reused between polls
	slab []Header
}

func (s *KafkaSource) admin() (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.WithLogger(kgoLogger(s.Logger)))
}

// Partitions lists the topic's partitions. A topic that does not exist
// yet (nothing produced to it so far) is waited for, as the edge's source
// waits for its stream, instead of failing and restarting with a backoff.
func (s *KafkaSource) Partitions(ctx context.Context) ([]int32, error) {
	cl, err := s.admin()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	logged := false
	for {
		ps, err := topicPartitions(ctx, cl, s.Topic)
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return ps, err
		}
		if !logged && s.Logger != nil {
			s.Logger.Info("waiting for the source topic to be created", "topic", s.Topic)
			logged = true
		}
		if !tick.Sleep(ctx, 500*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
}

func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata for %q: %w", topic, err)
	}
	for _, rt := range resp.Topics {
		if rt.Topic == nil || *rt.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			return nil, fmt.Errorf("topic %q: %w", topic, err)
		}
		var ps []int32
		for _, p := range rt.Partitions {
			ps = append(ps, p.Partition)
		}
		if len(ps) == 0 {
			return nil, fmt.Errorf("topic %q has no partitions", topic)
		}
		return ps, nil
	}
	return nil, fmt.Errorf("topic %q: not in the metadata answer", topic)
}

// Start opens the consuming client.
func (s *KafkaSource) Start(ctx context.Context, partitions []int32, from map[int32]int64) error {
	s.Close()
	offs := map[int32]kgo.Offset{}
	for _, p := range partitions {
		if o, ok := from[p]; ok && o > 0 {
			offs[p] = kgo.NewOffset().At(o)
		} else {
			offs[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(s.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.Topic: offs}),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.WithLogger(kgoLogger(s.Logger)),
	)
	if err != nil {
		return fmt.Errorf("consumer for %q: %w", s.Topic, err)
	}
	s.cl = cl
	return nil
}

// Poll returns the next records; ends gets each fetched partition's high
// watermark.
func (s *KafkaSource) Poll(ctx context.Context, ends map[int32]int64) ([]Record, error) {
	if s.cl == nil {
		return nil, errStopped
	}
	wait := s.PollWait
	if wait <= 0 {
		wait = 250 * time.Millisecond
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	fetches := s.cl.PollRecords(pctx, 50_000)
	// The records (and the slab holding their headers) are reused by the
	// next Poll: the runner is done with them by then, and what outputs keep
	// (key, value, header values) points into franz-go's records instead.
	out := s.recs[:0]
	slab := s.slab[:0]
	defer func() { s.recs, s.slab = out[:0], slab[:0] }()
	var ferr error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Err != nil {
			if !errors.Is(p.Err, context.DeadlineExceeded) && !errors.Is(p.Err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("fetch %s/%d: %w", p.Topic, p.Partition, p.Err)
			}
			return
		}
		if p.HighWatermark >= 0 {
			ends[p.Partition] = p.HighWatermark
		}
		for _, r := range p.Records {
			rec := Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value,
				Timestamp: r.Timestamp.UnixMilli()}
			if len(r.Headers) > 0 {
				if cap(slab)-len(slab) < len(r.Headers) {
					slab = make([]Header, 0, max(2*cap(slab), 4096, len(r.Headers)))
				}
				start := len(slab)
				for _, h := range r.Headers {
					slab = append(slab, Header{Key: h.Key, Value: h.Value})
				}
				rec.Headers = slab[start:len(slab):len(slab)]
			}
			out = append(out, rec)
		}
	})
	for _, fe := range fetches.Errors() {
		if fe.Topic == "" && ferr == nil && !errors.Is(fe.Err, context.DeadlineExceeded) && !errors.Is(fe.Err, context.Canceled) {
			ferr = fe.Err
		}
	}
	return out, ferr
}

// Close stops the consuming client.
func (s *KafkaSource) Close() {
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
}

// KafkaSink produces outputs (acks=all, franz-go's idempotent producer,
// key-hash partitioning) and reads back output IDs after a restart.
type KafkaSink struct {
	Brokers []string
	Logger  *slog.Logger

	once sync.Once
	cl   *kgo.Client
	err  error

	mu       sync.Mutex
	ends     map[string]int64
	firstErr error
}

func (k *KafkaSink) client() (*kgo.Client, error) {
	k.once.Do(func() {
		k.cl, k.err = kgo.NewClient(
			kgo.SeedBrokers(k.Brokers...),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.AllowAutoTopicCreation(),
			kgo.ProducerLinger(5*time.Millisecond),
			kgo.RecordRetries(10),
			kgo.WithLogger(kgoLogger(k.Logger)),
		)
	})
	return k.cl, k.err
}

// Write queues outputs.
func (k *KafkaSink) Write(ctx context.Context, outs []Output) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	k.mu.Lock()
	if k.ends == nil {
		k.ends = map[string]int64{}
	}
	failed := k.firstErr
	k.mu.Unlock()
	if failed != nil {
		return failed
	}
	for i := range outs {
		o := &outs[i]
		rec := &kgo.Record{Topic: o.Topic, Key: o.Key, Value: o.Value, Timestamp: time.UnixMilli(o.Timestamp)}
		rec.Headers = make([]kgo.RecordHeader, len(o.Headers))
		for j, h := range o.Headers {
			rec.Headers[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
		cl.Produce(ctx, rec, k.acked)
	}
	return nil
}

func (k *KafkaSink) acked(r *kgo.Record, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		if k.firstErr == nil {
			k.firstErr = fmt.Errorf("produce to %s: %w", r.Topic, err)
		}
		return
	}
	if k.ends == nil {
		k.ends = map[string]int64{}
	}
	key := r.Topic + "/" + strconv.Itoa(int(r.Partition))
	if r.Offset+1 > k.ends[key] {
		k.ends[key] = r.Offset + 1
	}
}

// Flush waits for every queued output.
func (k *KafkaSink) Flush(ctx context.Context) (map[string]int64, error) {
	cl, err := k.client()
	if err != nil {
		return nil, err
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.firstErr != nil {
		return nil, k.firstErr
	}
	ends := k.ends
	k.ends = map[string]int64{}
	return ends, nil
}

// IDsSince reads the output IDs written after from.
func (k *KafkaSink) IDsSince(ctx context.Context, topics []string, from map[string]int64) (map[string]struct{}, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	ids := map[string]struct{}{}
	admin, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.WithLogger(kgoLogger(k.Logger)))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	want := map[string]map[int32]kgo.Offset{}
	stop := map[string]map[int32]int64{}
	remaining := 0
	for _, topic := range topics {
		parts, err := topicPartitions(ctx, admin, topic)
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			continue // nothing written yet
		}
		if err != nil {
			return nil, err
		}
		endOffs, err := listEnds(ctx, admin, topic, parts)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			start, ok := from[topic+"/"+strconv.Itoa(int(p))]
			end := endOffs[p]
			if start >= end {
				continue // nothing written after the checkpoint (or ever)
			}
			if want[topic] == nil {
				want[topic], stop[topic] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			if ok {
				want[topic][p] = kgo.NewOffset().At(start)
			} else {
				want[topic][p] = kgo.NewOffset().AtStart()
			}
			stop[topic][p] = end
			remaining++
		}
	}
	if remaining == 0 {
		return ids, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Brokers...), kgo.ConsumePartitions(want), kgo.WithLogger(kgoLogger(k.Logger)))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	done := map[string]bool{}
	for remaining > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("read back %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			key := p.Topic + "/" + strconv.Itoa(int(p.Partition))
			end := stop[p.Topic][p.Partition]
			if done[key] {
				return
			}
			for _, r := range p.Records {
				if r.Offset >= end {
					break
				}
				for _, h := range r.Headers {
					if h.Key == HeaderID {
						ids[r.Topic+"\x00"+string(r.Key)+"\x00"+string(h.Value)] = struct{}{}
					}
				}
				if r.Offset+1 >= end {
					done[key] = true
				}
			}
			if !done[key] && p.LogStartOffset >= end { // retention removed the rest
				done[key] = true
			}
			if done[key] {
				remaining--
			}
		})
	}
	return ids, nil
}

// listEnds returns the partitions' end offsets (high watermarks).
func listEnds(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %q: %w", topic, err)
	}
	ends := map[int32]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, err)
			}
			ends[p.Partition] = p.Offset
		}
	}
	for _, p := range parts {
		if _, ok := ends[p]; !ok {
			return nil, fmt.Errorf("end offset of %s/%d: missing from the answer", topic, p)
		}
	}
	return ends, nil
}

// Close closes the producer; the next Write opens a fresh one, so a
// runner can reuse the sink after a restart.
func (k *KafkaSink) Close() {
	if k.cl != nil {
		k.cl.Close()
	}
	k.mu.Lock()
	k.cl, k.err, k.once, k.ends, k.firstErr = nil, nil, sync.Once{}, nil, nil
	k.mu.Unlock()
}

// kgoLogger passes franz-go's warnings and errors to slog.
func kgoLogger(l *slog.Logger) kgo.Logger {
	if l == nil {
		l = slog.Default()
	}
	return kgo.BasicLogger(slogWriter{l}, kgo.LogLevelWarn, nil)
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn("kafka client", "msg", string(p))
	return len(p), nil
}
