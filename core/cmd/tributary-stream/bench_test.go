package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/internal/stream"
)

// BenchmarkConsumeVsAggregate puts 500k readings of ~100 B from 1,000
// devices into a core (3 partitions), then reads them back twice: a plain
// franz-go consume, and tributary-stream's runner (1-minute tumbling
// windows, count/min/max/mean/p99, checkpoint to bbolt every second,
// outputs produced with acks=all). Run with -benchtime 1x.
func BenchmarkConsumeVsAggregate(b *testing.B) {
	const n = 500_000
	for _, kind := range []string{"json", "cbor"} {
		b.Run(kind, func(b *testing.B) {
			dir := b.TempDir()
			addr := startCore(b, dir, 64<<20)
			ctx := context.Background()
			prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 1))
			base := time.Now().Add(-time.Hour).UnixMilli()
			ct := []byte("application/" + kind)
			for i := 0; i < n; i++ {
				dev := fmt.Sprintf("dev-%04d", rng.IntN(1000))
				m := map[string]any{"dev": dev, "seq": i, "ts": base + int64(i)/10, "temp": 15 + rng.Float64()*20, "hum": float64(rng.IntN(1000)) / 10, "fw": "1.4.2"}
				var v []byte
				if kind == "cbor" {
					m["fw"] = "1.4.2-build.000000001"
					v, _ = cbor.Marshal(m)
				} else {
					v, _ = json.Marshal(m)
				}
				prod.Produce(ctx, &kgo.Record{Topic: "sensors", Key: []byte(dev), Value: v, Timestamp: time.UnixMilli(base + int64(i)/10),
					Headers: []kgo.RecordHeader{{Key: "content-type", Value: ct}}}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			if err := prod.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			prod.Close()

			b.Run("plain-consume", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("sensors"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
					if err != nil {
						b.Fatal(err)
					}
					got, bytes := 0, 0
					for got < n {
						f := cl.PollFetches(ctx)
						f.EachRecord(func(r *kgo.Record) { got++; bytes += len(r.Value) })
					}
					cl.Close()
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "readings/s")
			})
			runs := 0
			b.Run("aggregate", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					runs++ // a fresh aggregation (no checkpoint) each time
					a := &stream.Aggregation{Name: fmt.Sprintf("bench%d", runs), Source: "sensors", Fields: []stream.Field{{Name: "temp", Path: "temp"}},
						Window: &stream.Window{Type: stream.Tumbling, Size: time.Minute}, Aggregates: []string{"count", "min", "max", "mean", "p99"}, Lateness: time.Second}
					if err := a.Validate("bench"); err != nil {
						b.Fatal(err)
					}
					store, err := stream.OpenBoltStore(filepath.Join(dir, "stream"), a.Name)
					if err != nil {
						b.Fatal(err)
					}
					logger := slog.New(slog.NewTextHandler(io.Discard, nil))
					r := &stream.Runner{Agg: a, Source: &stream.KafkaSource{Brokers: []string{addr}, Topic: "sensors", Logger: logger},
						Sink: &stream.KafkaSink{Brokers: []string{addr}, Logger: logger}, Store: store, Interval: time.Second, Logger: logger}
					rctx, cancel := context.WithCancel(ctx)
					done := make(chan struct{})
					go func() { defer close(done); _ = r.Run(rctx) }()
					deadline := time.Now().Add(2 * time.Minute)
					for r.Status().Processed < n {
						if time.Now().After(deadline) {
							b.Fatalf("processed %d of %d in 2 minutes", r.Status().Processed, n)
						}
						time.Sleep(5 * time.Millisecond) // poll interval
					}
					cancel()
					<-done
					_ = store.Close()
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "readings/s")
			})
		})
	}
}
