package bridge

import (
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

// BenchmarkBacklogDrain ingests 30 s worth of a 10k msg/s, ~100-byte
// reading stream with the core down, then brings the core up and measures
// how fast the bridge drains that backlog while live ingest goes on at the
// same 10k msg/s. Run with -benchtime=1x; the figure to watch is x-ingest
// (drain rate over ingest rate, target >= 10).
func BenchmarkBacklogDrain(b *testing.B) {
	for _, codec := range []string{"zstd", "lz4", "none"} {
		b.Run(codec, func(b *testing.B) { benchDrain(b, codec, false) })
	}
	// Exactly once into a Kafka target (the core spoken to as Kafka): one
	// transaction per edge read of up to max_batch_bytes.
	b.Run("zstd-exactly-once", func(b *testing.B) { benchDrain(b, "zstd", true) })
}

func benchDrain(b *testing.B, codec string, exactlyOnce bool) {
	const (
		ingestRate = 10_000
		backlogFor = 30 * time.Second
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		addr := testkit.FreeAddr(b)
		core := newCore(b, addr, "")
		e := openEdge(b, b.TempDir(), 4)
		devs := devices("bench", 64)
		next := map[string]uint64{}
		backlog := int(ingestRate * backlogFor.Seconds())
		for k := 0; k < backlog; k++ {
			d := devs[k%len(devs)]
			if err := e.appendReading(d, next[d], 30); err != nil { // ~100-byte JSON value
				b.Fatal(err)
			}
			next[d]++
		}
		cfg := testBridgeConfig(addr)
		if exactlyOnce {
			cfg = exactlyOnceConfig(addr)
		}
		cfg.MaxBatchBytes = 1 << 20
		cfg.Compression = codec
		core.start()
		b.StartTimer()
		start := time.Now()
		rb := startBridge(b, cfg, e)
		in := e.startIngest(devs, next, ingestRate/1000, time.Millisecond) // live traffic
		// Drained: every partition's cursor is past where the log ended
		// when the core came up (live records keep arriving behind it).
		ends := map[int32]int64{}
		for p := int32(0); p < e.partitions; p++ {
			l, _ := e.topics.Partition(stream, p)
			ends[p] = l.NextOffset()
		}
		deadline := time.Now().Add(5 * time.Minute)
		for !cursorsPast(rb.Status(), ends) {
			if time.Now().After(deadline) {
				b.Fatalf("backlog not drained: %+v", rb.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		var forwarded int64
		for _, p := range rb.Status().Partitions {
			forwarded += p.Cursor
		}
		want := in.stop(b)
		rb.waitCaughtUp(b, time.Minute)
		rb.stop()
		rate := float64(forwarded) / took.Seconds()
		b.ReportMetric(rate, "drain-rec/s")
		b.ReportMetric(rate/ingestRate, "x-ingest")
		b.ReportMetric(took.Seconds(), "catch-up-s")
		if exactlyOnce {
			mustExactlyOnce(b, judgeCommitted(b, addr, stream, want))
		} else {
			verifyCore(b, core, addr, want)
		}
		core.stop()
		e.close()
	}
}

func cursorsPast(st Status, ends map[int32]int64) bool {
	if len(st.Partitions) < len(ends) {
		return false
	}
	for _, p := range st.Partitions {
		if p.Cursor < ends[p.Partition] {
			return false
		}
	}
	return true
}
