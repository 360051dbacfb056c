package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/tick"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clusterBench runs three tributary-core processes as one cluster (Serf,
// Raft, replicated partitions; the settings of core/cmd/tributary-core's
// TestClusterLeaderKills, gossip probe 300 ms) and measures:
//
//   - RF=3 cost: the same records (100 B, lz4, the core section's client
//     settings) produced with acks=all, idempotent, to a 3-partition RF=1
//     topic and then to an RF=3 topic (min.insync.replicas 2): records/s
//     from the first produce to the last ack, and the p99 of each record's
//     produce-call-to-acknowledgement time (as BenchmarkClusterProduce).
//   - Failover: an idempotent acks=all producer writes to the RF=3 topic
//     (six keys, two per partition, 20 records in flight each); the leader
//     of one partition is SIGKILLed, and failover is the time from the kill
//     to the acknowledgement of the first record produced to that partition
//     after the kill. The broker is restarted and back in every ISR before
//     the next kill. Median of 3 kills, 1 with --quick.
func clusterBench(dir string, quick bool) ([]row, error) {
	records, kills := 3_000_000, 3
	if quick {
		records, kills = 1_000_000, 1
	}
	coreBin, err := productBin(dir, "tributary-core")
	if err != nil {
		return nil, err
	}
	base, cleanup, err := scratchDir(dir, "cluster-bench-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	fmt.Fprintln(os.Stderr, "   cluster: starting 3 brokers")
	bs, err := configureCluster(coreBin, base)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, b := range bs {
			b.stop()
		}
	}()
	for _, b := range bs {
		if err := b.start(); err != nil {
			return nil, err
		}
	}
	for _, b := range bs {
		if err := waitListening(b.c, b.addr, 30*time.Second); err != nil {
			return nil, err
		}
	}
	addrs := []string{bs[0].addr, bs[1].addr, bs[2].addr}
	formed := time.Now()

	type result struct {
		rate float64
		p99  float64
	}
	var res [2]result
	for i, rf := range []int16{1, 3} {
		topic := fmt.Sprintf("bench-rf%d", rf)
		if err := testkit.CreateClusterTopic(ctx, addrs, topic, 3, rf); err != nil {
			return nil, err
		}
		if i == 0 {
			fmt.Fprintf(os.Stderr, "   cluster: formed and serving in %v\n", time.Since(formed).Round(time.Millisecond))
		}
		rate, p99, err := clusterProduce(ctx, addrs, topic, records, fmt.Sprintf("cluster produce RF=%d", rf))
		if err != nil {
			return nil, fmt.Errorf("RF=%d: %w", rf, err)
		}
		fmt.Fprintf(os.Stderr, "   cluster: RF=%d %s rec/s, p99 %.1f ms\n", rf, humanRate(rate), p99)
		res[i] = result{rate, p99}
	}

	fmt.Fprintf(os.Stderr, "   cluster: failover, %d leader kill(s) under load\n", kills)
	took, err := clusterFailover(ctx, bs, addrs, "bench-rf3", kills)
	if err != nil {
		return nil, fmt.Errorf("failover: %w", err)
	}
	each := make([]string, len(took))
	for i, d := range took {
		each[i] = fmt.Sprintf("%.2f s", d.Seconds())
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	what := "1 kill"
	if kills > 1 {
		what = fmt.Sprintf("median of %d kills", kills)
	}
	return []row{
		{
			Name:   fmt.Sprintf("cluster produce 100 B, acks=all idempotent, RF=1, 3 partitions, 3 broker processes (%d records)", records),
			Ours:   fmt.Sprintf("%s rec/s, p99 %.1f ms", humanRate(res[0].rate), res[0].p99),
			Target: "reported",
		},
		{
			Name:   "cluster produce 100 B, acks=all idempotent, RF=3 (min.insync.replicas 2), same records (ratio = RF=3 / RF=1 rec/s)",
			Ours:   fmt.Sprintf("%s rec/s, p99 %.1f ms", humanRate(res[1].rate), res[1].p99),
			Peer:   fmt.Sprintf("RF=1: %s rec/s, p99 %.1f ms", humanRate(res[0].rate), res[0].p99),
			Ratio:  res[1].rate / res[0].rate,
			Target: "reported",
		},
		{
			Name:   fmt.Sprintf("cluster failover: partition leader SIGKILLed under acks=all load, kill → first ack of a record produced after it (RF=3, 3 processes, gossip probe 300 ms; %s)", what),
			Ours:   fmt.Sprintf("%.2f s (%s)", median.Seconds(), strings.Join(each, ", ")),
			Target: "reported",
		},
	}, nil
}

// clusterBroker is one tributary-core process of the cluster.
type clusterBroker struct {
	id           int32
	bin, addr    string
	config, logf string
	c            *child
}

func configureCluster(bin, base string) ([]*clusterBroker, error) {
	port := func() string {
		a, err := testkit.ReserveAddr()
		if err != nil {
			panic(err) // only when 500 random ports are all taken
		}
		return a
	}
	serf := []string{port(), port(), port()}
	var bs []*clusterBroker
	for i := range 3 {
		b := &clusterBroker{id: int32(i + 1), bin: bin, addr: port(),
			config: filepath.Join(base, fmt.Sprintf("broker-%d.yaml", i+1)),
			logf:   filepath.Join(base, fmt.Sprintf("broker-%d.log", i+1))}
		yaml := testkit.CoreBrokerConfig(b.id, filepath.Join(base, fmt.Sprintf("data-%d", i+1)), b.addr, port(), port(), serf)
		if err := os.WriteFile(b.config, []byte(yaml), 0o644); err != nil {
			return nil, fmt.Errorf("broker %d config: %w", i+1, err)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

func (b *clusterBroker) start() error {
	c, err := startChild(fmt.Sprintf("broker %d", b.id), b.logf, b.bin, "-config", b.config, "-log-level", "warn")
	if err != nil {
		return err
	}
	b.c = c
	return nil
}

func (b *clusterBroker) stop() {
	if b.c != nil {
		b.c.kill()
		b.c = nil
	}
}

// clusterProduce produces n 100-byte records with acks=all (idempotent)
// and returns records/s and the p99 produce-to-ack time in ms.
func clusterProduce(ctx context.Context, addrs []string, topic string, n int, what string) (float64, float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err != nil {
		return 0, 0, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Warm up: metadata and producer id.
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
		return 0, 0, fmt.Errorf("warm-up produce: %w", err)
	}
	pool := values(100)
	lat := make([]time.Duration, n)
	var failed atomic.Pointer[error]
	start := time.Now()
	for i := 0; i < n && failed.Load() == nil; i++ {
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: pool[i%len(pool)]}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(sent)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
		progress(what, i+1, n)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("flush: %w", err)
	}
	secs := time.Since(start).Seconds()
	if p := failed.Load(); p != nil {
		return 0, 0, fmt.Errorf("produce: %w", *p)
	}
	slices.Sort(lat)
	return float64(n) / secs, pctMs(lat, 0.99), nil
}

// clusterFailover kills the leader of one partition of topic per round
// under an acks=all load and returns kill → first ack of a record produced
// to that partition after the kill, per round.
func clusterFailover(ctx context.Context, bs []*clusterBroker, addrs []string, topic string, kills int) ([]time.Duration, error) {
	const parts = 3
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordRetries(1<<30), kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.ProduceRequestTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer cl.Close()
	type ackTime struct{ produced, at time.Time }
	var (
		mu      sync.Mutex
		lastAck = map[int32]ackTime{}
		failed  error
		acked   int
		wg      sync.WaitGroup
	)
	pctx, stopProducing := context.WithCancel(ctx)
	defer func() { stopProducing(); wg.Wait() }()
	pool := values(100)
	for k := range 2 * parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inflight := make(chan struct{}, 20)
			for i := 0; ; i++ {
				select {
				case inflight <- struct{}{}:
				case <-pctx.Done():
					return
				}
				r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", k), Value: pool[i%len(pool)], Partition: int32(k % parts)}
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					defer func() { <-inflight }()
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						if failed == nil {
							failed = err
						}
						return
					}
					acked++
					if r.Timestamp.After(lastAck[r.Partition].produced) {
						lastAck[r.Partition] = ackTime{produced: r.Timestamp, at: time.Now()}
					}
				})
			}
		}()
	}
	// Let the load settle.
	if !tick.Sleep(ctx, time.Second) {
		return nil, ctx.Err()
	}
	var took []time.Duration
	for round := range kills {
		part := int32(round % parts)
		var victim *clusterBroker
		for deadline := time.Now().Add(20 * time.Second); victim == nil; time.Sleep(50 * time.Millisecond) {
			st, err := testkit.PartitionStates(ctx, addrs, topic)
			if err == nil && st[part].Leader > 0 {
				victim = bs[st[part].Leader-1]
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("round %d: no leader for partition %d: %v", round, part, err)
			}
		}
		killed := time.Now()
		victim.stop()
		var d time.Duration
		for d == 0 {
			mu.Lock()
			if a := lastAck[part]; a.produced.After(killed) {
				d = a.at.Sub(killed)
			}
			ferr := failed
			mu.Unlock()
			if ferr != nil {
				return nil, fmt.Errorf("round %d: produce failed: %w", round, ferr)
			}
			if time.Since(killed) > 30*time.Second {
				return nil, fmt.Errorf("round %d: partition %d accepted no write within 30 s of killing broker %d", round, part, victim.id)
			}
			time.Sleep(5 * time.Millisecond)
		}
		took = append(took, d)
		fmt.Fprintf(os.Stderr, "   cluster: round %d: killed broker %d (leader of %s/%d); acks resumed after %v\n",
			round+1, victim.id, topic, part, d.Round(time.Millisecond))
		if round == kills-1 {
			break
		}
		if err := victim.start(); err != nil {
			return nil, err
		}
		if err := waitListening(victim.c, victim.addr, 30*time.Second); err != nil {
			return nil, err
		}
		// Before the next kill the restarted broker is back in every ISR.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			st, err := testkit.PartitionStates(ctx, addrs, topic)
			full := err == nil && len(st) == parts
			for _, p := range st {
				full = full && len(p.ISR) == 3 && p.Leader > 0
			}
			if full {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("round %d: broker %d not back in every ISR within 60 s: %v", round, victim.id, err)
			}
		}
	}
	stopProducing()
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("produce failed: %w", failed)
	}
	fmt.Fprintf(os.Stderr, "   cluster: %d records acknowledged during the failover run, none failed\n", acked)
	return took, nil
}
