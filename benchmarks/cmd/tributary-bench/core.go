package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	coreserver "github.com/tributary-io/tributary/core/server"
)

// coreProfile, when set, makes the core comparison write one CPU profile
// per Tributary phase (<prefix>-<phase>.pprof). The profile covers the
// whole process, so the franz-go client shows up in it too.
var coreProfile = flag.String("core-cpuprofile", "", "write CPU profiles of the Tributary phases of the core comparison to <prefix>-<phase>.pprof")

// Every Kafka-protocol system gets the same franz-go settings: the client's
// defaults (10 ms linger, 50 000 buffered records) plus lz4 batches. The
// latency run alone lingers 0, for every system alike.
const (
	benchPartitions = 6
	latencyRate     = 10_000 // records/s
)

type coreSizes struct {
	n100, n1k  int           // records per throughput phase
	reps       int           // Kafka throughput phases run this often; the best counts
	latency    time.Duration // length of the paced latency run
	phaseLimit time.Duration // no phase runs longer than this
}

// kafkaSystem is a Kafka-protocol broker under test.
type kafkaSystem struct {
	name  string
	addr  string
	close func()
}

// coreVsPeers runs the issue-8 comparison: the Tributary core broker against
// kfake (data dir, SyncWrites) and NATS JetStream (file storage), every
// workload back to back on all three so machine noise hits them alike.
func coreVsPeers(dir string, quick bool) ([]row, error) {
	sz := coreSizes{n100: 2_000_000, n1k: 400_000, reps: 2, latency: 16 * time.Second, phaseLimit: 15 * time.Second}
	if quick {
		sz = coreSizes{n100: 500_000, n1k: 100_000, reps: 1, latency: 4 * time.Second, phaseLimit: 5 * time.Second}
	}
	root, trib, kf, stop, err := startKafkaPair(dir, "core-bench-")
	if err != nil {
		return nil, err
	}
	defer stop()
	jsys, err := startJetStream(filepath.Join(root, "jetstream"))
	if err != nil {
		return nil, err
	}
	defer jsys.close()

	var rows, cpuRows []row
	ctx := context.Background()
	// Which broker goes first alternates from phase to phase: whoever runs
	// second finds the client's heap already grown and the page cache
	// warm, which was worth up to 2× on consume when the order was fixed.
	phase := 0

	for _, size := range []int{100, 1024} {
		n := sz.n100
		if size == 1024 {
			n = sz.n1k
		}
		label := sizeLabel(size)
		var jsProduced int
		var jsRate float64
		for _, all := range []bool{false, true} {
			acks := "acks=1"
			if all {
				acks = "acks=all"
			}
			topic := fmt.Sprintf("p%d-%s", size, strings.ReplaceAll(acks, "=", ""))
			var rates [2]float64
			var counts [2]int
			var cpu [2]cpuPerRecord
			for rep := range sz.reps {
				for _, i := range order(&phase) {
					sys := []kafkaSystem{trib, kf}[i]
					what := fmt.Sprintf("%s produce %s %s", sys.name, label, acks)
					stop := measurePhase(sys.name, fmt.Sprintf("produce-%d-%s-%d", size, acks, rep))
					r, c, err := kafkaProduce(ctx, sys.addr, fmt.Sprintf("%s-%d", topic, rep), size, all, n, sz.phaseLimit, what)
					cpu[i].add(stop(), c)
					if err != nil {
						return rows, fmt.Errorf("%s: %w", what, err)
					}
					fmt.Fprintf(os.Stderr, "   %-38s %10.0f rec/s (%d records)\n", what, r, c)
					if r > rates[i] {
						rates[i], counts[i] = r, c
					}
				}
			}
			cpuRows = append(cpuRows, cpuRow(fmt.Sprintf("produce %s, %s", label, acks), cpu))
			rows = append(rows, row{
				Name:   fmt.Sprintf("core produce %s, %s, lz4, %d partitions (%d records, best of %d)", label, acks, benchPartitions, counts[0], sz.reps),
				Ours:   fmt.Sprintf("%s rec/s", humanRate(rates[0])),
				Peer:   fmt.Sprintf("kfake (SyncWrites): %s rec/s", humanRate(rates[1])),
				Ratio:  rates[0] / rates[1],
				Target: "≥ 1×",
			})
			if !all {
				// JetStream's publish ack comes after the write, before the
				// fsync, like acks=1 here; both fsync every 100 ms.
				what := fmt.Sprintf("jetstream publish %s", label)
				jsRate, jsProduced, err = jsPublish(ctx, jsys, fmt.Sprintf("p%d", size), size, n, sz.phaseLimit, what)
				if err != nil {
					return rows, fmt.Errorf("%s: %w", what, err)
				}
				fmt.Fprintf(os.Stderr, "   %-38s %10.0f rec/s (%d records)\n", what, jsRate, jsProduced)
				rows = append(rows, row{
					Name:   fmt.Sprintf("core produce %s, acks=1 vs JetStream async publish (both fsync every 100 ms)", label),
					Ours:   fmt.Sprintf("%s rec/s", humanRate(rates[0])),
					Peer:   fmt.Sprintf("JetStream: %s rec/s", humanRate(jsRate)),
					Ratio:  rates[0] / jsRate,
					Target: "≥ 5×",
				})
			}
		}

		// Consume what the acks=all phase stored.
		topic := fmt.Sprintf("p%d-acksall-0", size)
		var crates [2]float64
		var ccpu [2]cpuPerRecord
		for rep := range sz.reps {
			for _, i := range order(&phase) {
				sys := []kafkaSystem{trib, kf}[i]
				what := fmt.Sprintf("%s consume %s", sys.name, label)
				stop := measurePhase(sys.name, fmt.Sprintf("consume-%d-%d", size, rep))
				r, n, err := kafkaConsume(ctx, sys.addr, topic, sz.phaseLimit, what)
				ccpu[i].add(stop(), int(n))
				if err != nil {
					return rows, fmt.Errorf("%s: %w", what, err)
				}
				fmt.Fprintf(os.Stderr, "   %-38s %10.0f rec/s\n", what, r)
				crates[i] = max(crates[i], r)
			}
		}
		cpuRows = append(cpuRows, cpuRow("consume "+label, ccpu))
		what := fmt.Sprintf("jetstream consume %s", label)
		jcRate, err := jsConsume(ctx, jsys, fmt.Sprintf("p%d", size), jsProduced, sz.phaseLimit, what)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", what, err)
		}
		fmt.Fprintf(os.Stderr, "   %-38s %10.0f rec/s\n", what, jcRate)
		rows = append(rows,
			row{
				Name:   fmt.Sprintf("core consume %s from the start (one client, best of %d)", label, sz.reps),
				Ours:   fmt.Sprintf("%s rec/s", humanRate(crates[0])),
				Peer:   fmt.Sprintf("kfake: %s rec/s", humanRate(crates[1])),
				Ratio:  crates[0] / crates[1],
				Target: "≥ 1×",
			},
			row{
				Name:   fmt.Sprintf("core consume %s vs JetStream pull consumer (ack none)", label),
				Ours:   fmt.Sprintf("%s rec/s", humanRate(crates[0])),
				Peer:   fmt.Sprintf("JetStream: %s rec/s", humanRate(jcRate)),
				Ratio:  crates[0] / jcRate,
				Target: "≥ 5×",
			})
	}

	rows = append(rows, cpuRows...)

	txnRows, err := txnVsIdempotent(ctx, []kafkaSystem{trib, kf}, sz.n100/4, sz.reps, sz.phaseLimit, &phase)
	if err != nil {
		return rows, err
	}
	rows = append(rows, txnRows...)

	// Latency: 100 B at a paced 10k records/s, acks=all for Kafka systems.
	// Each system runs twice for half the time, in mirrored order
	// (T K J J K T), and the samples are pooled, so a burst of load from
	// elsewhere on the machine is less likely to land on one system only.
	var samples [3][]time.Duration
	half := sz.latency / 2
	for round, idx := range []int{0, 1, 2, 2, 1, 0} {
		var got []time.Duration
		what := fmt.Sprintf("%s latency (%d/2)", []string{"tributary", "kfake", "jetstream"}[idx], round/3+1)
		switch idx {
		case 0, 1:
			sys := []kafkaSystem{trib, kf}[idx]
			stop := measurePhase(sys.name, fmt.Sprintf("latency-%d", round/3+1))
			got, err = kafkaLatency(ctx, sys.addr, fmt.Sprintf("lat%d", round/3), half, what)
			stop()
		default:
			got, err = jsLatency(ctx, jsys, fmt.Sprintf("lat%d", round/3), half, what)
		}
		if err != nil {
			return rows, fmt.Errorf("%s: %w", what, err)
		}
		samples[idx] = append(samples[idx], got...)
	}
	// The disk's own floor, measured right after in the same directory:
	// an acks=all request waits for the fsync of each partition it spans,
	// and the producer's next request (one in flight when idempotent) waits
	// for it. One partition, then all of them.
	var disk [2]latencies
	for i, n := range []int{1, benchPartitions} {
		floor, err := fsyncFloor(root, n, half/2)
		if err != nil {
			return rows, err
		}
		disk[i] = summarize(floor)
		fmt.Fprintf(os.Stderr, "   %-38s p50 %s p99 %s (%d rounds)\n", fmt.Sprintf("disk floor, %d file(s)", n), ms(disk[i].p50), ms(disk[i].p99), disk[i].n)
	}
	var lat [3]latencies
	for i := range lat {
		lat[i] = summarize(samples[i])
		fmt.Fprintf(os.Stderr, "   %-38s p50 %s p99 %s (%d records)\n", []string{"tributary", "kfake", "jetstream"}[i]+" latency", ms(lat[i].p50), ms(lat[i].p99), lat[i].n)
	}
	rows = append(rows,
		row{
			Name:   fmt.Sprintf("core produce→consume latency, 100 B at 10k rec/s, acks=all, linger 0 (%d records; ratio = peer p99 / ours)", lat[0].n),
			Ours:   fmt.Sprintf("p50 %s, p99 %s", ms(lat[0].p50), ms(lat[0].p99)),
			Peer:   fmt.Sprintf("kfake: p50 %s, p99 %s", ms(lat[1].p50), ms(lat[1].p99)),
			Ratio:  float64(lat[1].p99) / float64(lat[0].p99),
			Target: "p99 ≤ kfake (≥ 1×) and ≤ 3 ms",
		},
		row{
			Name:   fmt.Sprintf("disk floor for the rows above: 300 B appended and fdatasynced, rounds back to back in the same directory, to one file, and to %d files side by side (one acks=all request over every partition)", benchPartitions),
			Ours:   fmt.Sprintf("1 file: p50 %s, p99 %s; %d files: p50 %s, p99 %s", ms(disk[0].p50), ms(disk[0].p99), benchPartitions, ms(disk[1].p50), ms(disk[1].p99)),
			Target: "reported",
		},
		row{
			Name:  "core produce→consume latency vs JetStream (async publish, pull consumer; ratio = peer p99 / ours)",
			Ours:  fmt.Sprintf("p50 %s, p99 %s", ms(lat[0].p50), ms(lat[0].p99)),
			Peer:  fmt.Sprintf("JetStream: p50 %s, p99 %s", ms(lat[2].p50), ms(lat[2].p99)),
			Ratio: float64(lat[2].p99) / float64(lat[0].p99),
		})
	return rows, nil
}

// startTributary starts the single-node core broker with its default
// durability: interval fsync every 100 ms, and acks=all produce answered
// only after an fsync covering the batch (concurrent waits share one).
func startTributary(dir string) (kafkaSystem, error) {
	cfg := coreserver.DefaultConfig()
	cfg.DataDir = dir
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = ""
	cfg.DefaultPartitions = benchPartitions
	var srv *coreserver.Server
	var err error
	startLabelled("tributary", func() {
		srv, err = coreserver.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	})
	if err != nil {
		return kafkaSystem{}, fmt.Errorf("start tributary core: %w", err)
	}
	return kafkaSystem{name: "tributary", addr: srv.Addr(), close: func() {
		if err := srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "   close tributary core:", err)
		}
	}}, nil
}

// startKafkaPair starts a Tributary core and a kfake broker with their data
// under a new scratch directory in dir; stop closes both and removes it.
func startKafkaPair(dir, prefix string) (root string, trib, kf kafkaSystem, stop func(), err error) {
	root, err = os.MkdirTemp(dir, prefix)
	if err != nil {
		return "", trib, kf, nil, fmt.Errorf("scratch dir: %w", err)
	}
	if trib, err = startTributary(filepath.Join(root, "tributary")); err != nil {
		os.RemoveAll(root)
		return "", trib, kf, nil, err
	}
	if kf, err = startKfake(filepath.Join(root, "kfake")); err != nil {
		trib.close()
		os.RemoveAll(root)
		return "", trib, kf, nil, err
	}
	return root, trib, kf, func() {
		kf.close()
		trib.close()
		os.RemoveAll(root)
	}, nil
}

// startKfake starts one kfake broker persisting to dir with an fsync per
// produced batch (SyncWrites), whatever the acks.
func startKfake(dir string) (kafkaSystem, error) {
	var c *kfake.Cluster
	var err error
	startLabelled("kfake", func() {
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir), kfake.SyncWrites(),
			kfake.DefaultNumPartitions(benchPartitions), kfake.Ports(0))
	})
	if err != nil {
		return kafkaSystem{}, fmt.Errorf("start kfake: %w", err)
	}
	return kafkaSystem{name: "kfake", addr: c.ListenAddrs()[0], close: c.Close}, nil
}

func kafkaClient(addr string, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ProducerBatchCompression(kgo.Lz4Compression())}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("new client: %w", err)
	}
	return cl, nil
}

// pollInBackground polls cl in a goroutine and hands each fetch to handle
// with the time it arrived, until stop (which waits for the goroutine); a
// poll cut short by stop or by the end of ctx is not handed on.
func pollInBackground(ctx context.Context, cl *kgo.Client, handle func(fs kgo.Fetches, arrived time.Time)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			fs := cl.PollFetches(ctx)
			arrived := time.Now()
			if ctx.Err() != nil {
				return
			}
			handle(fs, arrived)
		}
	})
	return func() { cancel(); wg.Wait() }
}

func createTopic(ctx context.Context, cl *kgo.Client, topic string) error {
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(10_000)
	_, err := adm.CreateTopic(ctx, benchPartitions, 1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	return nil
}

// openProducer connects a producer client, creates topic, and gives a
// context bounding the phase (limit plus time to drain); done closes both.
func openProducer(ctx context.Context, addr, topic string, limit time.Duration, opts ...kgo.Opt) (*kgo.Client, context.Context, func(), error) {
	cl, err := kafkaClient(addr, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
	done := func() { cancel(); cl.Close() }
	if err := createTopic(ctx, cl, topic); err != nil {
		done()
		return nil, nil, nil, err
	}
	return cl, ctx, done, nil
}

// kafkaProduce produces n records of size bytes (or as many as fit in
// limit) and returns acknowledged records/s, counting until the last ack.
func kafkaProduce(ctx context.Context, addr, topic string, size int, all bool, n int, limit time.Duration, what string, extra ...kgo.Opt) (float64, int, error) {
	opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks())}
	if !all {
		opts = []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}
	}
	cl, ctx, done, err := openProducer(ctx, addr, topic, limit, append(opts, extra...)...)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	pool := values(size)
	var failed firstError
	start := time.Now()
	deadline := start.Add(limit)
	i := 0
	for ; i < n && failed.get() == nil; i++ {
		if i%1024 == 0 && time.Now().After(deadline) {
			break
		}
		cl.Produce(ctx, &kgo.Record{Value: pool[i%len(pool)]}, failed.promise)
		progress(what, i+1, n)
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("flush: %w", err)
	}
	secs := time.Since(start).Seconds()
	if err := failed.get(); err != nil {
		return 0, 0, fmt.Errorf("produce: %w", err)
	}
	return float64(i) / secs, i, nil
}

// kafkaConsume reads the topic from the start up to its end offsets, as
// listed before the read begins, and returns records/s and the records.
func kafkaConsume(ctx context.Context, addr, topic string, limit time.Duration, what string, extra ...kgo.Opt) (float64, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, limit+10*time.Second)
	defer cancel()
	total, err := topicEnd(ctx, addr, topic, extra...)
	if err != nil {
		return 0, 0, err
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("topic %s is empty", topic)
	}
	start := time.Now()
	cl, err := kafkaClient(addr, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, extra...)...)
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	got := int64(0)
	for got < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return 0, 0, fmt.Errorf("consumed %d of %d: %w", got, total, err)
		}
		if err := fs.Err0(); err != nil {
			return 0, 0, fmt.Errorf("poll: %w", err)
		}
		got += int64(fs.NumRecords())
		progress(what, int(min(got, total)), int(total))
	}
	return float64(got) / time.Since(start).Seconds(), got, nil
}

// topicEnd sums the topic's end offsets (every topic here starts at 0).
func topicEnd(ctx context.Context, addr, topic string, extra ...kgo.Opt) (int64, error) {
	cl, err := kafkaClient(addr, extra...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < benchPartitions; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = -1 // latest
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	var sum int64
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("list offsets %s/%d: %w", topic, p.Partition, err)
			}
			sum += p.Offset
		}
	}
	return sum, nil
}

type latencies struct {
	p50, p99 time.Duration
	n        int
}

// pacer calls send for record i at start + i/latencyRate until d has passed.
func pace(ctx context.Context, d time.Duration, what string, send func(i int)) int {
	n := int(d.Seconds() * latencyRate)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if w := time.Until(start.Add(time.Duration(i) * time.Second / latencyRate)); w > 0 {
			time.Sleep(w)
		}
		send(i)
		progress(what, i+1, n)
	}
	return n
}

// collector gathers produce→consume latencies from the send time stamped
// into the first 8 bytes of each value (nanoseconds, same clock).
type collector struct {
	mu   sync.Mutex
	lat  []time.Duration
	want int
	done chan struct{}
}

func newCollector(want int) *collector {
	return &collector{lat: make([]time.Duration, 0, want), want: want, done: make(chan struct{})}
}

func (c *collector) add(now time.Time, value []byte) {
	if len(value) < 8 {
		return
	}
	sent := int64(binary.BigEndian.Uint64(value))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lat) >= c.want {
		return
	}
	c.lat = append(c.lat, time.Duration(now.UnixNano()-sent))
	if len(c.lat) == c.want {
		close(c.done)
	}
}

func (c *collector) result(ctx context.Context) ([]time.Duration, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lat) < c.want {
		return nil, fmt.Errorf("received %d of %d records", len(c.lat), c.want)
	}
	return slices.Clone(c.lat), nil
}

func summarize(l []time.Duration) latencies {
	if len(l) == 0 {
		return latencies{}
	}
	l = slices.Clone(l)
	slices.Sort(l)
	return latencies{p50: l[len(l)/2], p99: l[len(l)*99/100], n: len(l)}
}

// order returns the two Kafka systems' indexes, flipped on every other call.
func order(phase *int) []int {
	*phase++
	if *phase%2 == 0 {
		return []int{1, 0}
	}
	return []int{0, 1}
}

// stamped copies a pool value and writes the send time into its first 8
// bytes.
func stamped(pool [][]byte, i int) []byte {
	v := slices.Clone(pool[i%len(pool)])
	binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
	return v
}

func kafkaLatency(ctx context.Context, addr, topic string, d time.Duration, what string) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	prod, err := kafkaClient(addr, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	defer prod.Close()
	if err := createTopic(ctx, prod, topic); err != nil {
		return nil, err
	}
	cons, err := kafkaClient(addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	col := newCollector(int(d.Seconds() * latencyRate))
	stopPoll := pollInBackground(ctx, cons, func(fs kgo.Fetches, arrived time.Time) {
		fs.EachRecord(func(r *kgo.Record) { col.add(arrived, r.Value) })
	})
	defer stopPoll()
	var failed atomic.Pointer[error]
	pool := values(100)
	pace(ctx, d, what, func(i int) {
		prod.Produce(ctx, &kgo.Record{Value: stamped(pool, i)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	})
	if err := prod.Flush(ctx); err != nil {
		return nil, fmt.Errorf("flush: %w", err)
	}
	if p := failed.Load(); p != nil {
		return nil, fmt.Errorf("produce: %w", *p)
	}
	return col.result(ctx)
}

// jetStreamSystem is an embedded NATS server with JetStream on file
// storage, fsyncing every 100 ms (Tributary's default interval), and one
// client connection.
type jetStreamSystem struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
	// failed holds the first failed async publish since the last reset.
	failed atomic.Pointer[error]
}

func startJetStream(dir string) (*jetStreamSystem, error) {
	opts := &server.Options{
		Host:         "127.0.0.1",
		Port:         server.RANDOM_PORT,
		JetStream:    true,
		StoreDir:     dir,
		SyncInterval: 100 * time.Millisecond,
		NoSigs:       true,
		NoLog:        true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new nats server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats server not ready after 10s")
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	j := &jetStreamSystem{srv: srv, nc: nc}
	// 50 000 in flight, like franz-go's default buffer.
	j.js, err = jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(50_000),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			j.failed.CompareAndSwap(nil, &err)
		}))
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return j, nil
}

func (j *jetStreamSystem) close() {
	j.nc.Close()
	j.srv.Shutdown()
	j.srv.WaitForShutdown()
}

func (j *jetStreamSystem) stream(ctx context.Context, name string) error {
	_, err := j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{name + ".>"},
		Storage:  jetstream.FileStorage,
		Replicas: 1,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// jsPublish publishes n messages asynchronously (or as many as fit in
// limit) and returns acknowledged messages/s, counting until the last ack.
func jsPublish(ctx context.Context, j *jetStreamSystem, name string, size, n int, limit time.Duration, what string) (float64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
	defer cancel()
	if err := j.stream(ctx, name); err != nil {
		return 0, 0, err
	}
	pool := values(size)
	subject := name + ".data"
	j.failed.Store(nil)
	start := time.Now()
	deadline := start.Add(limit)
	i := 0
	for ; i < n; i++ {
		if i%1024 == 0 && time.Now().After(deadline) {
			break
		}
		// A full window blocks the publisher, as a full franz-go buffer does.
		if _, err := j.js.PublishAsync(subject, pool[i%len(pool)], jetstream.WithStallWait(limit)); err != nil {
			return 0, 0, fmt.Errorf("publish: %w", err)
		}
		progress(what, i+1, n)
	}
	select {
	case <-j.js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("waiting for publish acks: %w", ctx.Err())
	}
	secs := time.Since(start).Seconds()
	if p := j.failed.Load(); p != nil {
		return 0, 0, fmt.Errorf("publish ack: %w", *p)
	}
	return float64(i) / secs, i, nil
}

// jsConsume reads total messages from the start of the stream through a
// pull consumer that needs no acks (Kafka consumers do not ack per record
// either).
func jsConsume(ctx context.Context, j *jetStreamSystem, name string, total int, limit time.Duration, what string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, limit+10*time.Second)
	defer cancel()
	start := time.Now()
	cons, err := j.js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{
		Durable:       "bench",
		AckPolicy:     jetstream.AckNonePolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return 0, fmt.Errorf("create consumer: %w", err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(jetstream.Msg) {
		n := got.Add(1)
		progress(what, int(min(n, int64(total))), total)
		if n == int64(total) {
			close(done)
		}
	}, jetstream.PullMaxMessages(5000))
	if err != nil {
		return 0, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	select {
	case <-done:
	case <-ctx.Done():
		return 0, fmt.Errorf("consumed %d of %d: %w", got.Load(), total, ctx.Err())
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

func jsLatency(ctx context.Context, j *jetStreamSystem, name string, d time.Duration, what string) ([]time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	if err := j.stream(ctx, name); err != nil {
		return nil, err
	}
	cons, err := j.js.CreateOrUpdateConsumer(ctx, name, jetstream.ConsumerConfig{
		Durable:   "lat",
		AckPolicy: jetstream.AckNonePolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	col := newCollector(int(d.Seconds() * latencyRate))
	cc, err := cons.Consume(func(m jetstream.Msg) { col.add(time.Now(), m.Data()) }, jetstream.PullMaxMessages(5000))
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	subject := name + ".data"
	j.failed.Store(nil)
	var failed error
	pool := values(100)
	pace(ctx, d, what, func(i int) {
		if _, err := j.js.PublishAsync(subject, stamped(pool, i), jetstream.WithStallWait(d)); err != nil && failed == nil {
			failed = err
		}
	})
	if failed != nil {
		return nil, fmt.Errorf("publish: %w", failed)
	}
	if p := j.failed.Load(); p != nil {
		return nil, fmt.Errorf("publish ack: %w", *p)
	}
	return col.result(ctx)
}

// values returns a pool of distinct record values of size bytes that lz4
// compresses about 2:1: 16-byte runs of random bytes alternate with 16-byte
// runs of fixed text, as in a sensor reading's changing numbers and fixed
// field names. A single repeated value would compress over 100:1, and one
// 1 MiB fetch would then inflate to hundreds of MB in the client, measuring
// the client's allocator rather than the broker.
func values(size int) [][]byte {
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	const text = "temperature_c=21humidity_pct=45."
	pool := make([][]byte, 4096)
	for i := range pool {
		v := make([]byte, size)
		for j := range v {
			if j/16%2 == 0 {
				v[j] = byte(rng.Uint32())
			} else {
				v[j] = text[j%len(text)]
			}
		}
		pool[i] = v
	}
	return pool
}

func sizeLabel(size int) string {
	if size == 1024 {
		return "1 KiB"
	}
	return fmt.Sprintf("%d B", size)
}

func humanRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.0fk", r/1e3)
	}
	return fmt.Sprintf("%.0f", r)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// fsyncFloor is the disk's part of an acks=all produce: n scratch files in
// dir (one per partition a request spans); each round appends 300 B to
// every file and fdatasyncs them side by side, as a request waits for each
// of its partitions' fsyncs, and the round's time is the slowest one's.
// Rounds run back to back for d.
func fsyncFloor(dir string, n int, d time.Duration) ([]time.Duration, error) {
	files := make([]*os.File, n)
	for i := range files {
		f, err := os.CreateTemp(dir, "fsync-floor-")
		if err != nil {
			return nil, fmt.Errorf("disk floor: %w", err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		files[i] = f
	}
	rec := make([]byte, 300)
	errs := make([]error, len(files))
	var took []time.Duration
	for start := time.Now(); time.Since(start) < d; {
		t := time.Now()
		var wg sync.WaitGroup
		for i, f := range files {
			wg.Go(func() {
				if _, errs[i] = f.Write(rec); errs[i] == nil {
					errs[i] = syscall.Fdatasync(int(f.Fd()))
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("disk floor: %w", err)
		}
		took = append(took, time.Since(t))
	}
	return took, nil
}
