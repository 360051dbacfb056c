package stream

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// benchReadings makes n readings of about 100 bytes from 1,000 devices,
// one every 100 µs of event time (600k per minute window), mostly in order.
func benchReadings(n int, asCBOR bool) []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	base := refBase
	out := make([]Record, n)
	for i := range out {
		dev := rng.IntN(1000)
		ts := base + int64(i)/10 - rng.Int64N(50)
		m := map[string]any{"dev": fmt.Sprintf("dev-%04d", dev), "seq": i, "ts": ts, "temp": 15 + rng.Float64()*20,
			"hum": float64(rng.IntN(1000)) / 10, "fw": "1.4.2"}
		var v []byte
		ct := "application/json"
		if asCBOR {
			v, _ = cbor.Marshal(m)
			ct = "application/cbor"
			if len(v) < 100 { // pad to ~100 B like the JSON
				m["fw"] = m["fw"].(string) + string(make([]byte, 100-len(v)))
				v, _ = cbor.Marshal(m)
			}
		} else {
			v, _ = json.Marshal(m)
		}
		out[i] = Record{Topic: "sensors", Partition: int32(dev % 3), Offset: int64(i), Key: []byte(fmt.Sprintf("dev-%04d", dev)),
			Value: v, Timestamp: ts, Headers: []Header{{Key: "content-type", Value: []byte(ct)}}}
	}
	return out
}

// BenchmarkEngine: 1-minute tumbling windows, count/min/max/mean/p99 of one
// field, 1,000 keys, with a checkpoint (snapshot + bbolt fsync) every 1M
// records — about once a second at the target rate.
func BenchmarkEngine(b *testing.B) {
	for _, kind := range []string{"json", "cbor"} {
		b.Run(kind, func(b *testing.B) {
			recs := benchReadings(1<<20, kind == "cbor")
			var size int
			for _, r := range recs {
				size += len(r.Value)
			}
			cfg := &Aggregation{Name: "bench", Source: "sensors", Fields: []Field{{Name: "temp", Path: "temp"}},
				Window: &Window{Type: Tumbling, Size: time.Minute}, Aggregates: []string{"count", "min", "max", "mean", "p99"}, Lateness: time.Second}
			if err := cfg.Validate("bench"); err != nil {
				b.Fatal(err)
			}
			store, err := OpenBoltStore(b.TempDir(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			e, err := New(cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			e.Assign([]int32{0, 1, 2})
			outputs := 0
			emit := func(Output) { outputs++ }
			var offset int64
			b.SetBytes(int64(size / len(recs)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := i % len(recs)
				r := recs[j]
				// keep offsets and time moving across passes
				pass := int64(i / len(recs))
				r.Offset = offset
				offset++
				r.Timestamp += pass * int64(len(recs)) / 10
				e.Process(&r, emit)
				if i%(1<<20) == (1<<20)-1 {
					state, err := e.Snapshot()
					if err != nil {
						b.Fatal(err)
					}
					if err := store.Save(Checkpoint{State: state}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkDecodeOnly is the floor: just reading the field.
func BenchmarkDecodeOnly(b *testing.B) {
	for _, kind := range []string{"json", "cbor"} {
		b.Run(kind, func(b *testing.B) {
			recs := benchReadings(1<<16, kind == "cbor")
			p := mustPath("temp")
			f := fmtJSON
			if kind == "cbor" {
				f = fmtCBOR
			}
			var sum float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				v, _ := extractNumber(f, recs[i%len(recs)].Value, p)
				sum += v
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}
