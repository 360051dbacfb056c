package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	coreserver "github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/storage"
)

// streamVsConsume runs the issue-14 comparison: readings of ~100 B from
// 1,000 devices in a core (3 partitions), read by a plain franz-go consumer
// and by tributary-stream's runner (1-minute tumbling windows,
// count/min/max/mean/p99, bbolt checkpoint every second, acks=all outputs);
// and the engine alone over the same records.
func streamVsConsume(dir string, quick bool) ([]row, error) {
	n := 1_000_000
	if quick {
		n = 300_000
	}
	var rows []row
	for _, kind := range []string{"json", "cbor"} {
		r, err := streamOnce(dir, kind, n)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", kind, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

func streamConfig(name string) (*stream.Aggregation, error) {
	a := &stream.Aggregation{Name: name, Source: "sensors", Fields: []stream.Field{{Name: "temp", Path: "temp"}},
		Window: &stream.Window{Type: stream.Tumbling, Size: time.Minute}, Aggregates: []string{"count", "min", "max", "mean", "p99"}, Lateness: time.Second}
	return a, a.Validate("bench")
}

func streamOnce(dir, kind string, n int) ([]row, error) {
	scratch, cleanup, err := scratchDir(dir, "stream-bench-")
	if err != nil {
		return nil, err
	}
	defer cleanup()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := coreserver.Start(coreserver.Config{
		DataDir: filepath.Join(scratch, "core"), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DefaultPartitions: 3,
		Log: storage.LogConfig{SegmentBytes: 64 << 20},
	}, logger, nil)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	addr := srv.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Produce.
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 1))
	base := time.Now().Add(-3 * time.Hour).UnixMilli()
	ct := []byte("application/" + kind)
	var perr error
	var recs []stream.Record
	for i := 0; i < n; i++ {
		dev := fmt.Sprintf("dev-%04d", rng.IntN(1000))
		ts := base + int64(i)/10
		m := map[string]any{"dev": dev, "seq": i, "ts": ts, "temp": 15 + rng.Float64()*20, "hum": float64(rng.IntN(1000)) / 10, "fw": "1.4.2"}
		var v []byte
		if kind == "cbor" {
			m["fw"] = "1.4.2-build.000000001"
			v, _ = cbor.Marshal(m)
		} else {
			v, _ = json.Marshal(m)
		}
		h := []kgo.RecordHeader{{Key: "content-type", Value: ct}}
		recs = append(recs, stream.Record{Topic: "sensors", Partition: int32(i % 3), Offset: int64(i / 3), Key: []byte(dev), Value: v, Timestamp: ts,
			Headers: []stream.Header{{Key: "content-type", Value: ct}}})
		prod.Produce(ctx, &kgo.Record{Topic: "sensors", Key: []byte(dev), Value: v, Timestamp: time.UnixMilli(ts), Headers: h},
			func(_ *kgo.Record, err error) {
				if err != nil && perr == nil {
					perr = err
				}
			})
		progress("stream "+kind+": produce", i+1, n)
	}
	if err := prod.Flush(ctx); err != nil {
		return nil, err
	}
	prod.Close()
	if perr != nil {
		return nil, perr
	}

	// The engine alone, with a checkpoint every 1M readings.
	agg, err := streamConfig("engine")
	if err != nil {
		return nil, err
	}
	eng, err := stream.New(agg, nil)
	if err != nil {
		return nil, err
	}
	eng.Assign([]int32{0, 1, 2})
	store, err := stream.OpenBoltStore(filepath.Join(scratch, "stream"), "engine")
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range recs {
		eng.Process(&recs[i], func(stream.Output) {})
		if i%1_000_000 == 999_999 || i == len(recs)-1 {
			state, err := eng.Snapshot()
			if err != nil {
				return nil, err
			}
			if err := store.Save(stream.Checkpoint{State: state}); err != nil {
				return nil, err
			}
		}
	}
	engineRate := float64(n) / time.Since(start).Seconds()
	_ = store.Close()

	// Plain consume.
	start = time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("sensors"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	for got := 0; got < n; {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.Close()
			return nil, ctx.Err()
		}
		f.EachRecord(func(*kgo.Record) { got++ })
	}
	cl.Close()
	plainRate := float64(n) / time.Since(start).Seconds()

	// The runner: consume + aggregate + checkpoints + outputs.
	agg, err = streamConfig("run")
	if err != nil {
		return nil, err
	}
	store, err = stream.OpenBoltStore(filepath.Join(scratch, "stream"), "run")
	if err != nil {
		return nil, err
	}
	defer store.Close()
	r := &stream.Runner{Agg: agg, Source: &stream.KafkaSource{Brokers: []string{addr}, Topic: "sensors", Logger: logger},
		Sink: &stream.KafkaSink{Brokers: []string{addr}, Logger: logger}, Store: store, Interval: time.Second, Logger: logger}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	start = time.Now()
	go func() { defer close(done); _ = r.Run(rctx) }()
	for r.Status().Processed < uint64(n) {
		if ctx.Err() != nil {
			stop()
			<-done
			return nil, fmt.Errorf("runner processed %d of %d", r.Status().Processed, n)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
	runRate := float64(n) / time.Since(start).Seconds()
	stop()
	<-done

	target := "≥ 300k/s"
	if kind == "cbor" {
		target = "≥ 1M/s"
	}
	return []row{
		{Name: fmt.Sprintf("aggregation engine, %s 100 B, 1k keys, 1-min tumbling + p99, checkpoints", kind),
			Ours: fmt.Sprintf("%.0f readings/s", engineRate), Target: target + " per core"},
		{Name: fmt.Sprintf("consume + aggregate (%s) vs plain consume from a core", kind),
			Ours: fmt.Sprintf("%.0f readings/s", runRate), Peer: fmt.Sprintf("%.0f readings/s", plainRate),
			Ratio: runRate / plainRate, Target: "≥ 0.5× (cost ≤ 2× a plain consume)"},
	}, nil
}
