package ingest

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// FuzzRecord sends any topic, payload and content type through every
// rule format: the hook never panics, and a publish is either a record
// for its rule's stream or a dead letter with a reason.
func FuzzRecord(f *testing.F) {
	cfg := Config{Rules: []rules.Config{
		{Name: "json", Match: "j/{device}", Stream: "j", Format: "json", Time: rules.TimeConfig{Field: "/t", Zone: "Europe/Berlin", MaxAge: time.Hour}, Seq: "/s",
			Schema: `{"type":"object","properties":{"v":{"type":"number"}}}`},
		{Name: "cbor", Match: "c/{device}", Stream: "c", Format: "cbor", Time: rules.TimeConfig{Field: "/1"}, Seq: "/0"},
		{Name: "senml", Match: "s/{device}", Stream: "s", Format: "senml-json"},
		{Name: "senmlc", Match: "sc/{device}", Stream: "sc", Format: "senml-cbor"},
		{Name: "text", Match: "t/{device}/{+rest}", Stream: "t.{rest}", Format: "text"},
		{Name: "reading", Match: "r/{device}", Stream: "r", Format: "reading"},
		{Name: "spb", Match: "spBv1.0/{group}/{type}/{node}/{device?}", Stream: "p.{group}", Key: "{node}", Format: "sparkplug-b", Decode: true},
	}}
	h := newTestHookConfig(f, cfg)
	for _, s := range []struct {
		topic string
		p     string
	}{
		{"j/d", `{"t":"2024-05-01T12:00:00","s":3,"v":1}`},
		{"c/d", "\xa2\x00\x01\x01\x1a\x65\x00\x00\x00"},
		{"s/d", `[{"bn":"x","n":"t","v":1}]`},
		{"t/d/a/b", "42.5"},
		{"r/d", `{"device":"d","seq":1}`},
		{"spBv1.0/g/NDATA/n", "\x08\x01\x18\x01"},
		{"sensors/d/x", "\xa1\x61a\x01"},
	} {
		f.Add(s.topic, []byte(s.p), "")
	}
	cl := &mqtt.Client{ID: "fuzz"}
	f.Fuzz(func(t *testing.T, topic string, p []byte, ct string) {
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: topic, Payload: p}
		pk.Properties.ContentType = ct
		rp := newPending()
		defer rp.release()
		stream, _, dead := h.record(cl, &pk, time.Now(), rp)
		if topicmap.ValidStream(stream) != nil {
			t.Fatalf("%q: stream %q", topic, stream)
		}
		_, hasReason := hdr(rp.rec, HeaderReason)
		if (dead != "") != hasReason {
			t.Fatalf("%q %q: dead kind %q, reason header %v", topic, p, dead, hasReason)
		}
	})
}

func hdr(r recordbatch.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}
