package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/firmware-sim/reading"
)

func record(t *testing.T, offset int64, r reading.Reading, e reading.Encoding, withType bool) *kgo.Record {
	t.Helper()
	v, err := reading.Encode(r, e)
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Offset: offset, Key: []byte(r.Device), Value: v,
		Headers: []kgo.RecordHeader{{Key: "edge-id", Value: []byte("demo-edge-0")}}}
	if withType {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "content-type", Value: []byte(e.ContentType())})
	}
	return rec
}

// TestConsumerAdd feeds fetched partitions to the consumer's bookkeeping
// (no broker involved) and checks lag, latest values and latencies.
func TestConsumerAdd(t *testing.T) {
	t.Parallel()
	c := &consumer{
		records: map[string]float64{},
		hwm:     map[string]map[int32]int64{},
		next:    map[string]map[int32]int64{},
		latest:  map[string]latest{},
	}
	now := time.UnixMilli(1_800_000_000_000)
	dev := func(seq uint64, temp float64, age time.Duration) reading.Reading {
		return reading.Reading{Device: "dev-000001", Seq: seq, TsMs: now.Add(-age).UnixMilli(), Temp: temp, Hum: 40, Vib: 0.5}
	}
	c.add("sensors", 0, 10, []*kgo.Record{
		record(t, 5, dev(7, 20.5, 30*time.Millisecond), reading.CBOR, true),
		record(t, 6, dev(8, 21.5, 10*time.Millisecond), reading.JSON, false), // sniffed
	}, now)
	// An older reading fetched later (another partition) must not win.
	c.add("sensors", 1, 4, []*kgo.Record{
		record(t, 3, dev(6, 19.0, 50*time.Millisecond), reading.SenMLCBOR, true),
		{Offset: 4, Value: []byte("not a reading")},
	}, now)
	// A partition with a high watermark but nothing read has no known lag.
	c.add("sensors", 2, 100, nil, now)

	s := c.stats([]string{"dev-000001", "dev-000002"})
	tt := s.Topics["sensors"]
	if tt.Records != 4 {
		t.Errorf("records = %v, want 4", tt.Records)
	}
	// Partition 0: hwm 10, next 7 → 3; partition 1: hwm 4, next 5 → 0; partition 2 unknown.
	if tt.Lag != 3 {
		t.Errorf("lag = %d, want 3", tt.Lag)
	}
	if s.Undecodable != 1 {
		t.Errorf("undecodable = %v, want 1", s.Undecodable)
	}
	l, ok := s.Latest["dev-000001"]
	if !ok || l.Reading.Seq != 8 || l.Reading.Temp != 21.5 || l.EdgeID != "demo-edge-0" || l.Latency != 10*time.Millisecond {
		t.Errorf("latest dev-000001 = %+v (found %v), want seq 8 at 21.5 via demo-edge-0, 10ms", l, ok)
	}
	if _, ok := s.Latest["dev-000002"]; ok {
		t.Error("a device never seen has a latest reading")
	}
	if len(s.Latencies) != 3 {
		t.Errorf("latencies = %v, want 3 samples", s.Latencies)
	}
	// Aggregated windows (the edges' sensors.10s) are kept per device,
	// the latest window winning, and are not "undecodable".
	win := func(off, end int64, count int) *kgo.Record {
		return &kgo.Record{Offset: off, Key: []byte("dev-000001"), Headers: []kgo.RecordHeader{
			{Key: headerStreamID, Value: []byte("f/x")}, {Key: "edge-id", Value: []byte("demo-edge-1")}},
			Value: []byte(fmt.Sprintf(`{"group":"dev-000001","window_start":%d,"window_end":%d,"count":%d,"final":true,"temp":{"count":%d,"min":19,"max":22,"mean":20.5,"p99":21.9}}`,
				end-10000, end, count, count))}
	}
	c.add("sensors.10s", 0, 2, []*kgo.Record{win(0, 1_800_000_020_000, 10), win(1, 1_800_000_010_000, 9)}, now)
	s = c.stats([]string{"dev-000001"})
	if w := s.Windows["sensors.10s"]["dev-000001"]; w.Count != 10 || w.Temp.P99 != 21.9 || w.EdgeID != "demo-edge-1" {
		t.Errorf("latest window = %+v", w)
	}
	if s.Undecodable != 1 {
		t.Errorf("undecodable = %v after windows, want still 1", s.Undecodable)
	}
	if again := c.stats(nil); len(again.Latencies) != 0 {
		t.Errorf("latency samples handed out twice: %v", again.Latencies)
	}
}
