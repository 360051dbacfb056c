package bridge

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/tributary-io/tributary/internal/forwarded"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

func testForwarder(codec int) *forwarder {
	return &forwarder{b: &Bridge{edgeID: "edge-f", codec: codec}, pid: forwarded.ProducerID("edge-f", 0), maxBatch: 1 << 20}
}

// encode keeps key, value, timestamp and headers, adds the edge headers,
// numbers the batch by edge offset and starts at next inside an edge batch.
func TestEncodeKeepsRecords(t *testing.T) {
	t.Parallel()
	var recs []recordbatch.Record
	for i := 0; i < 5; i++ {
		recs = append(recs, recordbatch.Record{Timestamp: int64(1000 + i), Key: []byte("k" + strconv.Itoa(i)), Value: []byte("v" + strconv.Itoa(i)),
			Headers: []recordbatch.RecordHeader{{Key: "content-type", Value: []byte("application/json")}}})
	}
	edge, err := recordbatch.Build(recs, recordbatch.BuildOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1, BaseOffset: 40})
	if err != nil {
		t.Fatal(err)
	}
	f := testForwarder(recordbatch.CompressionZstd)
	batch, n, after, err := f.encode(edge, 42)
	if err != nil || n != 3 || after != 45 {
		t.Fatalf("encode: n=%d after=%d err=%v; want 3 records, next 45", n, after, err)
	}
	h, err := recordbatch.Validate(batch)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != f.pid || h.ProducerEpoch != 0 || h.BaseSequence != forwarded.Sequence(42) || h.Compression() != recordbatch.CompressionZstd {
		t.Fatalf("header %+v", h)
	}
	got, err := recordbatch.Records(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		src := recs[i+2]
		if !bytes.Equal(r.Key, src.Key) || !bytes.Equal(r.Value, src.Value) || r.Timestamp != src.Timestamp || len(r.Headers) != 3 ||
			r.Headers[0].Key != "content-type" || r.Headers[1].Key != HeaderEdgeID || string(r.Headers[1].Value) != "edge-f" ||
			r.Headers[2].Key != HeaderEdgeOffset || string(r.Headers[2].Value) != strconv.Itoa(42+i) {
			t.Fatalf("record %d: %+v from %+v", i, r, src)
		}
	}
}

// FuzzEncode: whatever the edge log hands over, encode never panics, and
// what it builds is a valid batch whose sequence is the first edge offset.
func FuzzEncode(f *testing.F) {
	b, _ := recordbatch.Build([]recordbatch.Record{{Key: []byte("d"), Value: []byte("{}")}}, recordbatch.NoProducer)
	f.Add(b, int64(0))
	f.Add(append(b[:len(b):len(b)], b...), int64(0))
	f.Add([]byte{0, 1, 2}, int64(3))
	f.Fuzz(func(t *testing.T, raw []byte, next int64) {
		fw := testForwarder(recordbatch.CompressionNone)
		batch, n, _, err := fw.encode(raw, next)
		if err != nil || n == 0 {
			return
		}
		h, err := recordbatch.Validate(batch)
		if err != nil {
			t.Fatalf("encode built an invalid batch: %v", err)
		}
		recs, err := recordbatch.Records(batch)
		if err != nil || len(recs) != n || int(h.NumRecords) != n {
			t.Fatalf("built %d records, header says %d, decoded %d (%v)", n, h.NumRecords, len(recs), err)
		}
		first, _ := strconv.ParseInt(string(recs[0].Headers[len(recs[0].Headers)-1].Value), 10, 64)
		if h.BaseSequence != forwarded.Sequence(first) || first < next {
			t.Fatalf("sequence %d for first edge offset %d (next %d)", h.BaseSequence, first, next)
		}
	})
}
