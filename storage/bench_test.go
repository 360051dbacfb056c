package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

func benchBatch(b *testing.B, records, size int) []byte {
	recs := make([]recordbatch.Record, records)
	val := make([]byte, size)
	for i := range val {
		val[i] = byte(i)
	}
	for i := range recs {
		recs[i] = recordbatch.Record{Key: []byte("dev-0001"), Value: val, Timestamp: time.Now().UnixMilli()}
	}
	return buildBatch(b, recs, recordbatch.NoProducer)
}

// BenchmarkAppend measures one appender; records/s and MB/s are reported.
// "durable" asks every append to wait for its fsync; the other policies let
// the syncer run in the background.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, n := range []int{1, 16, 256} {
			for _, mode := range []string{"always", "interval", "bytes"} {
				if mode == "always" && n == 1 && size == 1024 {
					continue // fsync-bound: the 100 B case shows it
				}
				b.Run(fmt.Sprintf("rec=%dB/batch=%d/sync=%s", size, n, mode), func(b *testing.B) {
					l := openTestLog(b, b.TempDir(), LogConfig{SegmentBytes: 256 << 20, Durability: Durability{Mode: SyncMode(mode), Interval: 100 * time.Millisecond, Bytes: 4 << 20}})
					defer l.Close()
					batch := benchBatch(b, n, size)
					b.SetBytes(int64(len(batch)))
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := l.Append(context.Background(), batch, AppendOptions{LeaderEpoch: -1}); err != nil {
							b.Fatal(err)
						}
					}
					if err := l.Sync(); err != nil {
						b.Fatal(err)
					}
					b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
				})
			}
		}
	}
}

// BenchmarkDurableAppendParallel is many writers each waiting for its fsync:
// the group commit case (edge QoS 1 publishes, acks=all produces).
func BenchmarkDurableAppendParallel(b *testing.B) {
	l := openTestLog(b, b.TempDir(), LogConfig{SegmentBytes: 256 << 20})
	defer l.Close()
	batch := benchBatch(b, 1, 100)
	b.SetBytes(int64(len(batch)))
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := append([]byte(nil), batch...)
		for pb.Next() {
			if _, err := l.Append(context.Background(), mine, AppendOptions{Durable: true, LeaderEpoch: -1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkRead(b *testing.B) {
	l := openTestLog(b, b.TempDir(), LogConfig{SegmentBytes: 256 << 20})
	defer l.Close()
	batch := benchBatch(b, 256, 100)
	for i := 0; i < 2000; i++ {
		if _, err := l.Append(context.Background(), batch, AppendOptions{LeaderEpoch: -1}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var bytes int64
	off := int64(0)
	for i := 0; i < b.N; i++ {
		if off >= l.NextOffset() {
			off = 0
		}
		data, err := l.Read(off, 1<<20, -1)
		if err != nil {
			b.Fatal(err)
		}
		bytes += int64(len(data))
		off += int64(len(data)/len(batch)) * 256
	}
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(bytes/int64(len(batch))*256)/b.Elapsed().Seconds(), "records/s")
}
