package sparkplug

import (
	"testing"
	"time"
)

// BenchmarkDecodeNDATA10 is the edge's per-message Sparkplug work for an
// NDATA of 10 metrics by alias (each with a timestamp and a Double value, no
// name or datatype, as Tahu nodes send them): Decode, Observe, RenderJSON.
// The payloads cycle through 256 seqs so every Observe is clean. The
// AppendJSON variant renders into a reused buffer instead.
func BenchmarkDecodeNDATA10(b *testing.B) {
	bl := NewBuilder("plant1", "gw7", 1)
	bl.Now = func() time.Time { return time.UnixMilli(1700000000000) }
	birth := make([]*Payload_Metric, 10)
	for i := range birth {
		birth[i] = named("line/"+string(rune('a'+i))+"/temperature", uint64(i+1), DataType_Double, 0.0)
	}
	topic, raw, err := bl.NBirth(birth...)
	if err != nil {
		b.Fatal(err)
	}
	top, _ := ParseTopic(topic)
	p, _ := Decode(raw)

	var msgs [256][]byte
	for i := range msgs {
		ms := make([]*Payload_Metric, 10)
		for j := range ms {
			m, _ := AliasMetric(uint64(j+1), DataType_Unknown, 20.0+float64(i)/10+float64(j))
			m.SetTimestamp(1700000000000 + uint64(i))
			ms[j] = m
		}
		// seq 1, 2, …, 255, 0: message i follows message i-1.
		_, msgs[i], err = bl.NData(ms...)
		if err != nil {
			b.Fatal(err)
		}
	}
	dataTop, _ := ParseTopic("spBv1.0/plant1/NDATA/gw7")
	// Each run starts from the restored birth: the first message sets the
	// seq expectation, the rest follow it.
	fresh := func() *Tracker {
		tr := NewTracker(0)
		tr.Restore(top, p)
		return tr
	}
	b.Run("RenderJSON", func(b *testing.B) { benchEdgePath(b, fresh(), dataTop, &msgs, false) })
	// AppendJSON into a reused buffer, for a caller that copies the
	// rendering into its batch anyway.
	b.Run("AppendJSON", func(b *testing.B) { benchEdgePath(b, fresh(), dataTop, &msgs, true) })
}

func benchEdgePath(b *testing.B, tr *Tracker, dataTop Topic, msgs *[256][]byte, reuse bool) {
	var buf []byte
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		p, err := Decode(msgs[i%256])
		if err != nil {
			b.Fatal(err)
		}
		if r := tr.Observe(dataTop, p); !r.Clean() {
			b.Fatalf("message %d: %v", i, r.Headers())
		}
		var err2 error
		if reuse {
			buf, err2 = AppendJSON(buf[:0], dataTop, p, tr)
		} else {
			_, err2 = RenderJSON(dataTop, p, tr)
		}
		if err2 != nil {
			b.Fatal(err2)
		}
	}
}

// BenchmarkDecodeOnlyNDATA10 isolates the protobuf part of the above.
func BenchmarkDecodeOnlyNDATA10(b *testing.B) {
	bl := NewBuilder("plant1", "gw7", 1)
	ms := make([]*Payload_Metric, 10)
	for j := range ms {
		ms[j], _ = AliasMetric(uint64(j+1), DataType_Unknown, float64(j))
		ms[j].SetTimestamp(1700000000000)
	}
	_, raw, _ := bl.NData(ms...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}
