package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func benchServer(b *testing.B) *Server {
	b.Helper()
	cfg := testConfig(b.TempDir())
	cfg.HTTPAddr = ""
	srv, err := Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	return srv
}

// BenchmarkProduce measures produce throughput through franz-go (one
// client, 6 partitions, lz4, idempotent), reporting records/s.
func BenchmarkProduce(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, acks := range []kgo.Acks{kgo.LeaderAck(), kgo.AllISRAcks()} {
			name := fmt.Sprintf("%dB/acks=1", size)
			if acks == kgo.AllISRAcks() {
				name = fmt.Sprintf("%dB/acks=all", size)
			}
			b.Run(name, func(b *testing.B) {
				srv := benchServer(b)
				opts := []kgo.Opt{kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic("bench"), kgo.AllowAutoTopicCreation(),
					kgo.RequiredAcks(acks), kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(time.Millisecond)}
				if acks == kgo.LeaderAck() {
					opts = append(opts, kgo.DisableIdempotentWrite())
				}
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				createTopic(b, cl, "bench", 6, nil)
				ctx := context.Background()
				value := make([]byte, size)
				for i := range value {
					value[i] = byte('a' + i%26)
				}
				var failed error
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
						if err != nil && failed == nil {
							failed = err
						}
					})
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
				if failed != nil {
					b.Fatal(failed)
				}
			})
		}
	}
}

// BenchmarkConsume measures fetch throughput of records stored by a
// producer (100 B values, lz4), reporting records/s.
func BenchmarkConsume(b *testing.B) {
	srv := benchServer(b)
	cl, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic("bench"),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	createTopic(b, cl, "bench", 6, nil)
	ctx := context.Background()
	value := make([]byte, 100)
	for i := 0; i < b.N; i++ {
		cl.Produce(ctx, &kgo.Record{Value: value}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	cons, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	got := 0
	for got < b.N {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkEndToEndLatency produces at a fixed 10k records/s (100 B, acks=all,
// lz4, no linger) while a consumer reads; it reports produce→consume latency
// percentiles (record timestamps are whole ms, so figures read up to 1 ms
// high). Each iteration is one record.
func BenchmarkEndToEndLatency(b *testing.B) {
	srv := benchServer(b)
	prod, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.DefaultProduceTopic("lat"),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	createTopic(b, prod, "lat", 6, nil)
	cons, err := kgo.NewClient(kgo.SeedBrokers(srv.Addr()), kgo.ConsumeTopics("lat"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(time.Second))
	if err != nil {
		b.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	value := make([]byte, 100)
	lat := make([]time.Duration, 0, b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < b.N && ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			now := time.Now()
			fs.EachRecord(func(r *kgo.Record) { lat = append(lat, now.Sub(r.Timestamp)) })
		}
	}()
	b.ResetTimer()
	const rate = 10_000
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		prod.Produce(ctx, &kgo.Record{Value: value, Timestamp: time.Now()}, nil)
	}
	<-done
	b.StopTimer()
	if len(lat) < b.N {
		b.Fatalf("consumed %d of %d", len(lat), b.N)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkClusterProduce compares RF=1 with RF=3 (min.insync.replicas 2)
// on the same three in-process brokers: acks=all, idempotent, 100 B
// records over 3 partitions, reporting records/s and the p99 of each
// record's produce-to-acknowledgement latency.
func BenchmarkClusterProduce(b *testing.B) {
	benchTopics := 0
	tb := startTestCluster(b, 3)
	for _, rf := range []int16{1, 3} {
		b.Run(fmt.Sprintf("rf=%d", rf), func(b *testing.B) {
			benchTopics++
			topic := fmt.Sprintf("bench-rf%d-%d", rf, benchTopics)
			tb.createTopic(topic, 3, rf, int(min(rf, 2)))
			cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addrs()...), kgo.DefaultProduceTopic(topic),
				kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := context.Background()
			// Warm up: metadata and producer id.
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("warm")}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			value := make([]byte, 100)
			lat := make([]time.Duration, b.N)
			var failed error
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				sent := time.Now()
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					lat[i] = time.Since(sent)
					if err != nil && failed == nil {
						failed = err
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}
