package gateway

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/internal/testkit"
)

// TestRuleBadInputDeadLettered: every malformed payload for its rule's
// format is acknowledged, kept in the rule's dead-letter stream with a
// reason, and counted per rule and kind.
func TestRuleBadInputDeadLettered(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Ingest.Rules = []rules.Config{
		{Name: "env", Match: "env/{device}", Stream: "env", Format: "json", DeadLetter: "env.rejected",
			Schema: `{"type":"object","required":["temperature"],"properties":{"temperature":{"type":"number"}}}`},
		{Name: "bin", Match: "bin/{device}", Stream: "bin", Format: "cbor", Time: rules.TimeConfig{Field: "/t", Unit: "ms"}},
		{Name: "binschema", Match: "bs/{device}", Stream: "bs", Format: "cbor",
			Schema: `{"type":"object","required":["temperature"],"properties":{"temperature":{"type":"number"}}}`},
		{Name: "txt", Match: "txt/{device}", Stream: "txt", Format: "text"},
		{Name: "pack", Match: "pack/{device}", Stream: "pack", Format: "senml-json"},
		{Name: "spb", Match: "spBv1.0/{group}/{type}/{node}/{device?}", Stream: "spb", Key: "{node}", Format: "sparkplug-b"},
		{Name: "when", Match: "when/{device}", Stream: "when", Format: "json", Time: rules.TimeConfig{Field: "/Time", Unit: "rfc3339"}},
	}
	g, _ := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 5, "bad")
	cases := []struct {
		topic   string
		payload []byte
		dlq     string
		rule    string
		kind    string
		reason  string
	}{
		{"env/d1", []byte(`{"temperature":"warm"}`), "env.rejected", "env", "schema", "schema"},
		{"env/d1", []byte(`{"humidity":4}`), "env.rejected", "env", "schema", "temperature"},
		{"env/d1", []byte(`{"temperature":`), "env.rejected", "env", "invalid", "json"},
		{"env/d1", []byte(strings.Repeat("[", 40) + strings.Repeat("]", 40)), "env.rejected", "env", "invalid", "nested deeper"},
		{"bin/d2", []byte{0xa1, 0x61}, "bin.dlq", "bin", "invalid", "cbor"},
		{"bin/d2", mustCBORBytes(t, map[string]any{"t": "yesterday"}), "bin.dlq", "bin", "bad_time", "time"},
		{"bs/d7", mustCBORBytes(t, map[string]any{"temperature": "warm"}), "bs.dlq", "binschema", "schema", "temperature"},
		{"txt/d3", []byte{0xff, 0xfe}, "txt.dlq", "txt", "invalid", "UTF-8"},
		{"pack/d4", []byte(`[{"n":1}]`), "pack.dlq", "pack", "invalid", "senml"},
		{"spBv1.0/g/NDATA/n1", []byte{0xff, 0xff, 0xff}, "spb.dlq", "spb", "sparkplug", "sparkplug"},
		{"spBv1.0/g/BOGUS/n1", []byte{}, "spb.dlq", "spb", "sparkplug", "sparkplug"},
		{"when/d5", []byte(`{"Time":"noon"}`), "when.dlq", "when", "bad_time", "noon"},
		{"sensors/d6/x", []byte{0xff, 0x00}, "sensors.dlq", "default", "invalid", "not JSON"},
		{"sensors/d6/x", []byte{}, "sensors.dlq", "default", "empty", "empty"},
	}
	for _, cs := range cases {
		if code, err := c.publish(cs.topic, cs.payload, 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish %s %q: code %#x err %v", cs.topic, cs.payload, code, err)
		}
	}
	byStream := map[string][]storedRecord{}
	for _, cs := range cases {
		if _, ok := byStream[cs.dlq]; !ok {
			byStream[cs.dlq] = readStream(t, g.Topics(), cs.dlq)
		}
	}
	next := map[string]int{}
	for _, cs := range cases {
		recs := byStream[cs.dlq]
		i := next[cs.dlq]
		next[cs.dlq]++
		if i >= len(recs) {
			t.Fatalf("%s: no dead letter for %q", cs.dlq, cs.payload)
		}
		r := recs[i]
		if !bytes.Equal(r.Value, cs.payload) || !strings.Contains(mustHeader(t, r, "reason"), cs.reason) {
			t.Errorf("%s %q: value %q reason %q, want reason with %q", cs.topic, cs.payload, r.Value, mustHeader(t, r, "reason"), cs.reason)
		}
	}
	// The same schema lets a good CBOR payload through.
	if code, err := c.publish("bs/d7", mustCBORBytes(t, map[string]any{"temperature": 21.5}), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("good CBOR: %#x %v", code, err)
	}
	if n := len(readStream(t, g.Topics(), "bs")); n != 1 {
		t.Fatalf("good CBOR payload: %d records", n)
	}
	m := testkit.Metrics(t, g.HTTPAddr())
	want := map[string]int{}
	for _, cs := range cases {
		want[fmt.Sprintf(`tributary_edge_dead_letters_total{kind=%q,rule=%q}`, cs.kind, cs.rule)]++
	}
	for series, n := range want {
		if !strings.Contains(m, series+" "+strconv.Itoa(n)+"\n") {
			t.Errorf("metrics lack %s %d", series, n)
		}
	}
}

func mustCBORBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRuleTimeWindow: device times outside max_age/max_future are
// replaced by the receive time (or clamped), the original kept in the
// device-time header and counted.
func TestRuleTimeWindow(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Ingest.Rules = []rules.Config{
		{Name: "replace", Match: "r/{device}", Stream: "r", Format: "json",
			Time: rules.TimeConfig{Field: "/ts", MaxAge: time.Hour, MaxFuture: time.Minute}},
		{Name: "clamp", Match: "c/{device}", Stream: "c", Format: "json",
			Time: rules.TimeConfig{Field: "/ts", MaxAge: time.Hour, MaxFuture: time.Minute, OutOfWindow: "clamp"}},
	}
	g, _ := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 4, "clock")
	now := time.Now().UnixMilli()
	old, future, fine := now-48*3600*1000, now+3600*1000, now-1000
	for _, topic := range []string{"r/d", "c/d"} {
		for _, ts := range []int64{old, future, fine} {
			if _, err := c.publish(topic, []byte(fmt.Sprintf(`{"ts":%d}`, ts)), 1, "", 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
	}
	end := time.Now().UnixMilli()
	r := readStream(t, g.Topics(), "r")
	cl := readStream(t, g.Topics(), "c")
	if len(r) != 3 || len(cl) != 3 {
		t.Fatalf("stored %d and %d", len(r), len(cl))
	}
	within := func(ms, lo, hi int64) bool { return ms >= lo && ms <= hi }
	if !within(r[0].Timestamp, now, end) || mustHeader(t, r[0], "device-time") != strconv.FormatInt(old, 10) ||
		!within(r[1].Timestamp, now, end) || mustHeader(t, r[1], "device-time") != strconv.FormatInt(future, 10) ||
		r[2].Timestamp != fine {
		t.Errorf("replace: %+v", r)
	}
	if _, ok := header(r[2].Record, "device-time"); ok {
		t.Error("a time inside the window got a device-time header")
	}
	if !within(cl[0].Timestamp, now-3600*1000, end-3600*1000) || !within(cl[1].Timestamp, now+60*1000, end+60*1000) || cl[2].Timestamp != fine {
		t.Errorf("clamp: %d %d %d", cl[0].Timestamp, cl[1].Timestamp, cl[2].Timestamp)
	}
	if m := testkit.Metrics(t, g.HTTPAddr()); !strings.Contains(m, `tributary_edge_device_time_replaced_total{rule="replace"} 2`) ||
		!strings.Contains(m, `tributary_edge_device_time_replaced_total{rule="clamp"} 2`) {
		t.Error("replaced device times not counted")
	}
}

// TestRuleConfigErrorStopsStart: a broken rule fails start-up with one
// message naming the rule and the field.
func TestRuleConfigErrorStopsStart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rule rules.Config
		want string
	}{
		{rules.Config{Name: "z2m", Match: "zigbee2mqtt/{device", Stream: "z"}, `rule "z2m" (#1): match`},
		{rules.Config{Name: "z2m", Match: "zigbee2mqtt/{device}", Stream: "z", Format: "yaml"}, `rule "z2m" (#1): format`},
		{rules.Config{Name: "z2m", Match: "zigbee2mqtt/{device}", Stream: "z.{room}"}, `rule "z2m" (#1): stream: template "z.{room}": capture {room} is not defined`},
		{rules.Config{Name: "z2m", Match: "zigbee2mqtt/{device}", Stream: "z", Schema: `{"minimum":"x"}`}, `rule "z2m" (#1): schema`},
	} {
		cfg := testConfig(t)
		cfg.Ingest.Rules = []rules.Config{c.rule}
		if _, err := Open(cfg, testkit.Logger(t)); err == nil {
			t.Fatalf("%+v: started", c.rule)
		} else if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %q, want one line with %q", err, c.want)
		}
	}
}

// TestResendWithoutSeq: once the edge has acknowledged a packet id, a
// publish with it is a new one even with DUP set and the same payload
// (MQTT-4.3.2-2): a device whose ids restart at 1, re-sending a repeated
// value whose first copy was lost, must not lose it. (A re-send whose
// PUBACK was never written is recognised: see ingest's
// TestResendRecognisedOnlyBeforeItsAck.)
func TestResendWithoutSeq(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	c := connectRaw(t, g.MQTTAddr(), 4, "z2m-like")
	send := func(id uint16, dup bool, p string) {
		t.Helper()
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Dup: dup}, ProtocolVersion: 4,
			TopicName: "sensors/lamp/state", Payload: []byte(p), PacketID: id}
		var buf bytes.Buffer
		if err := pk.PublishEncode(&buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.conn.Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if fh, _, err := c.read(5 * time.Second); err != nil || fh.Type != packets.Puback {
			t.Fatalf("no PUBACK: %v", err)
		}
	}
	send(7, false, `{"state":"ON"}`)
	send(7, true, `{"state":"ON"}`)
	send(7, true, `{"state":"OFF"}`)
	send(8, false, `{"state":"ON"}`)
	if recs := readStream(t, g.Topics(), "sensors"); len(recs) != 4 {
		t.Fatalf("stored %d, want 4", len(recs))
	}
	if d := g.Ingest().Counts().Duplicates; d != 0 {
		t.Fatalf("duplicates %v, want 0", d)
	}
}

// TestRuleSeqDedupAcrossRestart: with a rule's seq and time fields, a
// re-send after an edge restart is recognised (the window is rebuilt from
// the stored payloads through the rule), as for readings.
func TestRuleSeqDedupAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Ingest.Rules = []rules.Config{{Name: "telemetry", Match: "devices/{device}/telemetry", Stream: "telemetry", Format: "json",
		Time: rules.TimeConfig{Field: "/ts", Unit: "ms"}, Seq: "/seq"}}
	g, stop := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 4, "t1")
	for seq := 1; seq <= 3; seq++ {
		if _, err := c.publish("devices/dev-7/telemetry", []byte(fmt.Sprintf(`{"seq":%d,"ts":%d}`, seq, 1700000000000+seq)), 1, "", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	g, _ = startGateway(t, cfg)
	c = connectRaw(t, g.MQTTAddr(), 4, "t1")
	for seq := 2; seq <= 4; seq++ { // 2 and 3 are re-sends
		if _, err := c.publish("devices/dev-7/telemetry", []byte(fmt.Sprintf(`{"seq":%d,"ts":%d}`, seq, 1700000000000+seq)), 1, "", 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if recs := readStream(t, g.Topics(), "telemetry"); len(recs) != 4 {
		t.Fatalf("stored %d, want 4", len(recs))
	}
	if d := g.Ingest().Counts().Duplicates; d != 2 {
		t.Fatalf("duplicates %v, want 2", d)
	}
}
