package sparkplug

import (
	"testing"
	"time"
)

// BenchmarkDecodeNDATA10 is the edge's per-message Sparkplug work for an
// NDATA of 10 metrics by alias (each with a timestamp and a Double value, no
// name or datatype, as Tahu nodes send them): Decode, Observe, RenderJSON.
// The payloads cycle through 256 seqs so every Observe is clean.
func BenchmarkDecodeNDATA10(b *testing.B) {
	tr := NewTracker(0)
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
	tr.Observe(top, p)

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
		if _, err := RenderJSON(dataTop, p, tr); err != nil {
			b.Fatal(err)
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
