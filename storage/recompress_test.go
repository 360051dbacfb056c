package storage

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// With a topic codec set, appended batches in another codec are stored in
// the topic's codec with the same records and producer fields; "producer"
// keeps them; a change at run time applies to the next append.
func TestBrokerSideCompression(t *testing.T) {
	t.Parallel()
	l := openTestLog(t, t.TempDir(), LogConfig{Compression: "uncompressed"})
	defer l.Close()
	recs := []recordbatch.Record{{Key: []byte("dev-1"), Value: bytes.Repeat([]byte("reading "), 50), Timestamp: 1000,
		Headers: []recordbatch.RecordHeader{{Key: "edge-id", Value: []byte("e1")}}}, {Value: []byte("second"), Timestamp: 1001}}
	opts := recordbatch.BuildOptions{Compression: recordbatch.CompressionZstd, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 0, LeaderEpoch: -1}
	// Batch i is appended under codecs[i]: the codec the log opened with,
	// then each change at run time.
	codecs := []string{"uncompressed", "producer", "lz4"}
	var zb []byte
	for i, codec := range codecs {
		if i > 0 {
			if err := l.Reconfigure(LogConfig{Compression: codec}); err != nil {
				t.Fatal(err)
			}
		}
		opts.BaseSequence = int32(2 * i)
		zb = buildBatch(t, recs, opts)
		if _, err := l.Append(context.Background(), zb, AppendOptions{Idempotent: true}); err != nil {
			t.Fatal(err)
		}
	}
	hdrs := readAll(t, l)
	want := []int{recordbatch.CompressionNone, recordbatch.CompressionZstd, recordbatch.CompressionLZ4}
	if len(hdrs) != len(codecs) {
		t.Fatalf("%d batches", len(hdrs))
	}
	for i, h := range hdrs {
		if h.Compression() != want[i] || h.ProducerID != 7 || h.ProducerEpoch != 2 || h.BaseSequence != int32(2*i) || h.BaseOffset != int64(2*i) {
			t.Errorf("batch %d: %+v", i, h)
		}
		b, err := l.Read(h.BaseOffset, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := recordbatch.Records(b[:h.Size()])
		if err != nil || len(got) != 2 || !bytes.Equal(got[0].Value, recs[0].Value) || got[0].Headers[0].Key != "edge-id" || got[1].Timestamp != 1001 {
			t.Errorf("batch %d records: %v %+v", i, err, got)
		}
	}
	// A re-sent batch is still recognised as a duplicate after recompression.
	res, err := l.Append(context.Background(), zb, AppendOptions{Idempotent: true})
	if err != nil || !res.Duplicate {
		t.Fatalf("re-sent batch: %+v %v", res, err)
	}
	if err := l.Reconfigure(LogConfig{Compression: "brotli"}); err == nil {
		t.Fatal("unknown codec accepted")
	}
}

// BenchmarkAppendRecompress appends zstd batches of 1,000 100-byte
// records (what the bridge forwards) to a log under each compression.type;
// "producer" is the baseline that stores them as they are.
func BenchmarkAppendRecompress(b *testing.B) {
	recs := make([]recordbatch.Record, 1000)
	for i := range recs {
		v := []byte(fmt.Sprintf(`{"device":"dev-%04d","seq":%d,"temp":%d.%d,"hum":%d}`, i%50, i, 20+i%7, i%10, 40+i%13))
		recs[i] = recordbatch.Record{Key: []byte(fmt.Sprintf("dev-%04d", i%50)), Value: append(v, bytes.Repeat([]byte(" "), 100-len(v))...), Timestamp: int64(1000 + i)}
	}
	zb := buildBatch(b, recs, recordbatch.BuildOptions{Compression: recordbatch.CompressionZstd, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1})
	for _, c := range []string{"producer", "uncompressed", "gzip", "lz4", "snappy"} {
		b.Run(c, func(b *testing.B) {
			l := openTestLog(b, b.TempDir(), LogConfig{Compression: c, SegmentBytes: 256 << 20, Durability: Durability{Mode: SyncBytes, Bytes: 1 << 30}})
			defer l.Close()
			buf := make([]byte, len(zb))
			b.SetBytes(int64(len(recs) * 100))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				copy(buf, zb)
				if _, err := l.Append(context.Background(), buf, AppendOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(l.Size())/float64(b.N), "stored-B/batch")
		})
	}
}
