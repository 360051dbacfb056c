package ingest

import (
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// BenchmarkRecordSparkplug is the same for a Sparkplug NDATA of 10
// metrics by alias (the tracker knows the node's birth; seq 1, 2, ...).
func BenchmarkRecordSparkplug(b *testing.B) {
	for _, decode := range []bool{false, true} {
		b.Run(fmt.Sprintf("decode=%v", decode), func(b *testing.B) {
			cfg, bt, birth, topic, data := sparkplugRecordCases(decode)
			h := newTestHookConfig(b, cfg)
			if _, err := h.stream("plant"); err != nil {
				b.Fatal(err)
			}
			cl := &mqtt.Client{ID: "bench"}
			now := time.Now()
			h.record(cl, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: bt, Payload: birth}, now, newPending())
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: topic}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				pk.Payload = data[i%256]
				i++
				p := newPending()
				if _, _, dead := h.record(cl, &pk, now, p); dead != "" {
					b.Fatal(dead)
				}
				p.release()
			}
		})
	}
}

// BenchmarkRecord is the per-publish mapping and decoding (no append),
// each into a pendingRecord from the pool as the hook does:
// the default path (a CBOR reading under the default rule) and a generic
// JSON payload through a rule that takes key and time from it.
func BenchmarkRecord(b *testing.B) {
	reading, _ := cbor.Marshal(map[string]any{"device": "dev-000042", "seq": 7, "ts": time.Now().UnixMilli(), "temp": 21.5, "hum": 40.25, "vib": 0.01})
	cases := []struct {
		name  string
		cfg   Config
		topic string
		p     []byte
	}{
		{"cbor-reading-default-rule", Config{}, "sensors/dev-000042/reading", reading},
	}
	cases = append(cases, extraRecordCases()...)
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := newTestHookConfig(b, c.cfg)
			for _, s := range []string{"sensors", "z2m"} {
				if _, err := h.stream(s); err != nil { // streamAllowed finds it, as in steady state
					b.Fatal(err)
				}
			}
			cl := &mqtt.Client{ID: "bench"}
			pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: c.topic, Payload: c.p, PacketID: 1}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				p := newPending()
				if _, _, dead := h.record(cl, &pk, now, p); dead != "" {
					b.Fatal(dead)
				}
				p.release()
			}
		})
	}
}
