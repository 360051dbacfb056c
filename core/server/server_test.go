package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
)

// testConfig is a single broker's configuration for tests. A new group's
// first rebalance waits 100 ms for more members, not Kafka's 3 s: every
// test that consumed through a group paid those 3 s.
func testConfig(dir string) Config {
	cfg := Config{
		DataDir:           dir,
		KafkaAddr:         "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		DefaultPartitions: 3,
		Log:               storage.LogConfig{SegmentBytes: 1 << 20},
	}
	cfg.Groups.InitialRebalanceDelay = 100 * time.Millisecond
	return cfg
}

// startServer starts a broker and closes it when the test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	var srv *Server
	var err error
	// A restart reuses the previous port; the kernel may need a moment.
	testkit.Poll(5*time.Second, func() bool {
		srv, err = Start(cfg, testkit.Logger(t), nil)
		return err == nil || !strings.Contains(err.Error(), "address already in use")
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	testkit.CloseAtEnd(t, "server", srv)
	return srv
}

// failoverOpts make a test client retry every 50 ms and refresh metadata
// as often as every 100 ms: with franz-go's defaults (backoff up to 2.5 s,
// metadata at most every 5 s) a test waiting out a failover spent seconds
// asking a dead broker.
var failoverOpts = []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	kgo.MetadataMinAge(100 * time.Millisecond)}

// newClient is a client of the broker at addr (with failoverOpts), closed
// when the test ends.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := append([]kgo.Opt{kgo.SeedBrokers(addr)}, failoverOpts...)
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with one replica and configs.
func createTopic(t testing.TB, cl *kgo.Client, name string, partitions int32, configs map[string]string) {
	t.Helper()
	createTopicRF(t, cl, name, partitions, 1, configs)
}

// createTopicRF creates a topic with rf replicas and configs, failing the
// test on any error.
func createTopicRF(t testing.TB, cl *kgo.Client, name string, partitions int32, rf int16, configs map[string]string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, kmsg.StringPtr(v)
		rt.Configs = append(rt.Configs, c)
	}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	if code := resp.Topics[0].ErrorCode; code != 0 {
		t.Fatalf("create topic %s: %v (%v)", name, kerr.ErrorForCode(code), resp.Topics[0].ErrorMessage)
	}
}

// startWithTopics starts a broker with testConfig in a fresh directory,
// creates topics there (partitions each, one replica) and returns the
// broker and a client of it, both closed when the test ends.
func startWithTopics(t testing.TB, partitions int32, topics ...string) (*Server, *kgo.Client) {
	t.Helper()
	srv := startServer(t, testConfig(t.TempDir()))
	cl := newClient(t, srv.Addr())
	for _, topic := range topics {
		createTopic(t, cl, topic, partitions, nil)
	}
	return srv, cl
}

type sent struct {
	key, value string
	ts         time.Time
	hdr        string
}

// TestProduceConsumeWithRestart produces 100k records across 6 partitions
// (acks=all, idempotent, lz4), restarts the broker on the same data dir
// half-way while the producer keeps going, then reads everything back in
// per-partition order.
func TestProduceConsumeWithRestart(t *testing.T) {
	t.Parallel()
	const (
		total      = 100_000
		partitions = 6
		topic      = "readings"
	)
	n := total
	if testing.Short() {
		n = 12_000
	}
	dir := t.TempDir()
	cfg := testConfig(dir)
	srv := startServer(t, cfg)
	cfg.KafkaAddr = srv.Addr() // a restart must come back where clients look

	producer := newClient(t, srv.Addr(),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	createTopic(t, producer, topic, partitions, nil)

	base := time.UnixMilli(1_700_000_000_000)
	want := make([]sent, n)
	var (
		mu     sync.Mutex
		failed []error
		acked  int
	)
	ctx := testkit.Context(t, 3*time.Minute)
	var produced sync.WaitGroup
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			s := sent{
				key:   fmt.Sprintf("dev-%d", i%97),
				value: fmt.Sprintf("reading-%d", i),
				ts:    base.Add(time.Duration(i) * time.Millisecond),
				hdr:   fmt.Sprintf("h%d", i),
			}
			want[i] = s
			r := &kgo.Record{
				Key: []byte(s.key), Value: []byte(s.value), Timestamp: s.ts,
				Partition: int32(i % partitions),
				Headers:   []kgo.RecordHeader{{Key: "seq", Value: []byte(s.hdr)}, {Key: "content-type", Value: []byte("text/plain")}},
			}
			produced.Add(1)
			producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
				defer produced.Done()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
				} else {
					acked++
				}
			})
		}
	}
	// First half, then restart while the second half is in flight.
	produce(0, n/2)
	if err := producer.Flush(ctx); err != nil {
		t.Fatalf("flush first half: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		produce(n/2, n)
	}()
	// Restart once part of the second half is acknowledged, so batches are
	// in flight across the restart.
	testkit.Poll(time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= n/2+n/10
	})
	mu.Lock()
	t.Logf("restarting the broker with %d of %d records acknowledged", acked, n)
	mu.Unlock()
	if err := srv.Close(); err != nil {
		t.Fatalf("close for restart: %v", err)
	}
	srv = startServer(t, cfg)
	<-done
	produced.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d produce failures, first: %v", len(failed), failed[0])
	}
	if acked != n {
		t.Fatalf("acked %d of %d", acked, n)
	}

	consumer := newClient(t, srv.Addr(),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	next := make([]int, partitions) // next expected index per partition
	for p := range next {
		next[p] = p
	}
	got := 0
	for got < n {
		if ctx.Err() != nil {
			t.Fatalf("timed out after consuming %d of %d", got, n)
		}
		fetches := consumer.PollFetches(ctx)
		for _, e := range fetches.Errors() {
			if !errors.Is(e.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch error %s/%d: %v", e.Topic, e.Partition, e.Err)
			}
		}
		var bad error
		fetches.EachRecord(func(r *kgo.Record) {
			if bad != nil {
				return
			}
			i := next[r.Partition]
			if i >= n {
				bad = fmt.Errorf("partition %d: extra record at offset %d", r.Partition, r.Offset)
				return
			}
			w := want[i]
			switch {
			case string(r.Value) != w.value:
				bad = fmt.Errorf("partition %d offset %d: value %q, want %q (duplicate or reorder)", r.Partition, r.Offset, r.Value, w.value)
			case string(r.Key) != w.key:
				bad = fmt.Errorf("record %d: key %q, want %q", i, r.Key, w.key)
			case !r.Timestamp.Equal(w.ts):
				bad = fmt.Errorf("record %d: timestamp %v, want %v", i, r.Timestamp, w.ts)
			case len(r.Headers) != 2 || r.Headers[0].Key != "seq" || string(r.Headers[0].Value) != w.hdr ||
				r.Headers[1].Key != "content-type" || string(r.Headers[1].Value) != "text/plain":
				bad = fmt.Errorf("record %d: headers %v", i, r.Headers)
			case r.Offset != int64(i/partitions):
				bad = fmt.Errorf("record %d: offset %d, want %d", i, r.Offset, i/partitions)
			}
			next[r.Partition] = i + partitions
			got++
		})
		if bad != nil {
			t.Fatal(bad)
		}
	}
	// Nothing beyond what was produced.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if extra := consumer.PollFetches(short).NumRecords(); extra != 0 {
		t.Fatalf("%d records beyond the %d produced", extra, n)
	}
}
