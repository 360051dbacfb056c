package storage

import (
	"bytes"
	"context"
	"testing"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// With a topic codec set, appended batches in another codec are stored in
// the topic's codec with the same records and producer fields; "producer"
// keeps them; a change at run time applies to the next append.
func TestBrokerSideCompression(t *testing.T) {
	l := openTestLog(t, t.TempDir(), LogConfig{Compression: "uncompressed"})
	defer l.Close()
	recs := []recordbatch.Record{{Key: []byte("dev-1"), Value: bytes.Repeat([]byte("reading "), 50), Timestamp: 1000,
		Headers: []recordbatch.RecordHeader{{Key: "edge-id", Value: []byte("e1")}}}, {Value: []byte("second"), Timestamp: 1001}}
	opts := recordbatch.BuildOptions{Compression: recordbatch.CompressionZstd, ProducerID: 7, ProducerEpoch: 2, BaseSequence: 0, LeaderEpoch: -1}
	zb, err := recordbatch.Build(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(context.Background(), zb, AppendOptions{Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Reconfigure(LogConfig{Compression: "producer"}); err != nil {
		t.Fatal(err)
	}
	opts.BaseSequence = 2
	zb2, _ := recordbatch.Build(recs, opts)
	if _, err := l.Append(context.Background(), zb2, AppendOptions{Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Reconfigure(LogConfig{Compression: "lz4"}); err != nil {
		t.Fatal(err)
	}
	opts.BaseSequence = 4
	zb3, _ := recordbatch.Build(recs, opts)
	if _, err := l.Append(context.Background(), zb3, AppendOptions{Idempotent: true}); err != nil {
		t.Fatal(err)
	}
	hdrs := readAll(t, l)
	want := []int{recordbatch.CompressionNone, recordbatch.CompressionZstd, recordbatch.CompressionLZ4}
	if len(hdrs) != 3 {
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
	res, err := l.Append(context.Background(), zb3, AppendOptions{Idempotent: true})
	if err != nil || !res.Duplicate {
		t.Fatalf("re-sent batch: %+v %v", res, err)
	}
	if err := l.Reconfigure(LogConfig{Compression: "brotli"}); err == nil {
		t.Fatal("unknown codec accepted")
	}
}
