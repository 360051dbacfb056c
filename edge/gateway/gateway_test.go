package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/internal/testkit"
)

func pahoClient(t *testing.T, addr, id, user, pass string) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetCleanSession(true).SetOrderMatters(false)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("connect %s: timeout", id)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// connectPaho is pahoClient for a connection the test needs: it fails the
// test when the gateway does not accept it.
func connectPaho(t *testing.T, addr, id, user, pass string) paho.Client {
	t.Helper()
	c, err := pahoClient(t, addr, id, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func jsonReading(dev string, seq uint64, ts int64) []byte {
	return []byte(fmt.Sprintf(`{"device":%q,"seq":%d,"ts":%d,"temp":21.5,"hum":40.25,"vib":0.01}`, dev, seq, ts))
}

func cborReading(t *testing.T, dev string, seq uint64, ts int64) []byte {
	b, err := cbor.Marshal(map[string]any{"device": dev, "seq": seq, "ts": ts, "temp": 21.5, "hum": 40.25, "vib": 0.01})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func senmlCBOR(t *testing.T, dev string, seq uint64, ts int64) []byte {
	b, err := cbor.Marshal([]map[int]any{
		{-2: "urn:dev:" + dev + ":", -3: float64(ts) / 1000, 0: "temp", 2: 21.5},
		{0: "hum", 2: 40.25}, {0: "vib", 2: 0.01}, {0: "seq", 2: seq},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func senmlJSON(dev string, seq uint64, ts int64) []byte {
	return []byte(fmt.Sprintf(`[{"bn":"urn:dev:%s:","bt":%.3f,"n":"temp","v":21.5},{"n":"hum","v":40.25},{"n":"vib","v":0.01},{"n":"seq","v":%d}]`,
		dev, float64(ts)/1000, seq))
}

// TestIngestFormatsAndQoS publishes every payload format at every QoS with a
// real paho client and checks each record's stream, partition, key, value,
// headers and timestamp.
func TestIngestFormatsAndQoS(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	type sent struct {
		dev, topic, ct string
		payload        []byte
		ts             int64
	}
	var want []sent
	formats := []struct {
		ct   string
		make func(dev string, seq uint64, ts int64) []byte
	}{
		{"application/cbor", func(d string, s uint64, ts int64) []byte { return cborReading(t, d, s, ts) }},
		{"application/json", jsonReading},
		{"application/senml+cbor", func(d string, s uint64, ts int64) []byte { return senmlCBOR(t, d, s, ts) }},
		{"application/senml+json", senmlJSON},
	}
	c := connectPaho(t, g.MQTTAddr(), "pub-1", "", "")
	i := 0
	for _, f := range formats {
		for qos := byte(0); qos <= 2; qos++ {
			dev := fmt.Sprintf("dev-%06d", i)
			ts := int64(1_700_000_000_000 + 1000*i)
			s := sent{dev: dev, topic: "sensors/" + dev + "/reading", ct: f.ct, payload: f.make(dev, uint64(i), ts), ts: ts}
			tok := c.Publish(s.topic, qos, false, s.payload)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s qos %d: %v", f.ct, qos, tok.Error())
			}
			want = append(want, s)
			i++
		}
	}
	recs := waitRecords(t, g.Topics(), "sensors", len(want))
	if len(recs) != len(want) {
		t.Fatalf("stored %d records, want %d", len(recs), len(want))
	}
	info, _ := g.Topics().Get("sensors")
	if info.Partitions != 4 {
		t.Fatalf("sensors has %d partitions, want the default 4", info.Partitions)
	}
	byDev := map[string]storedRecord{}
	for _, r := range recs {
		if _, dup := byDev[string(r.Key)]; dup {
			t.Fatalf("device %s stored twice", r.Key)
		}
		byDev[string(r.Key)] = r
	}
	for _, s := range want {
		r, ok := byDev[s.dev]
		if !ok {
			t.Fatalf("no record for %s", s.dev)
		}
		if p := topicmap.Partition([]byte(s.dev), 4); r.Partition != p {
			t.Errorf("%s in partition %d, want %d", s.dev, r.Partition, p)
		}
		if !bytes.Equal(r.Value, s.payload) {
			t.Errorf("%s value differs from the payload sent", s.dev)
		}
		if r.Timestamp != s.ts {
			t.Errorf("%s timestamp %d, want device time %d", s.dev, r.Timestamp, s.ts)
		}
		for k, v := range map[string]string{"content-type": s.ct, "mqtt-topic": s.topic, "device": s.dev} {
			if got, _ := header(r.Record, k); got != v {
				t.Errorf("%s header %s = %q, want %q", s.dev, k, got, v)
			}
		}
		if _, ok := header(r.Record, "reason"); ok {
			t.Errorf("%s has a reason header", s.dev)
		}
	}
	if n := g.Ingest().Counts().Appended; n != float64(len(want)) {
		t.Errorf("appended counter %v, want %d", n, len(want))
	}
}

// TestMQTT5ContentTypeAndStreamConfig: the MQTT 5 content-type property wins
// over sniffing; a per-stream content type applies to publishes without one.
func TestMQTT5ContentTypeAndStreamConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Ingest.Streams = map[string]ingest.StreamConfig{"lab": {Partitions: 2, ContentType: "application/senml+json"}}
	g, _ := startGateway(t, cfg)
	c5 := connectRaw(t, g.MQTTAddr(), 5, "c5")
	// A JSON reading declared as SenML by the property is invalid SenML.
	if code, err := c5.publish("sensors/d1/reading", jsonReading("d1", 1, 5), 1, "application/senml+json", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish: code %#x err %v", code, err)
	}
	if code, err := c5.publish("sensors/d1/reading", jsonReading("d1", 2, 5), 1, "application/json; charset=utf-8", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish: code %#x err %v", code, err)
	}
	if code, err := c5.publish("lab/d2/reading", senmlJSON("d2", 3, 7000), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish: code %#x err %v", code, err)
	}
	dlq := readStream(t, g.Topics(), "sensors.dlq")
	if len(dlq) != 1 || !strings.Contains(mustHeader(t, dlq[0], "reason"), "senml") {
		t.Fatalf("want 1 SenML dead letter, got %+v", dlq)
	}
	ok := readStream(t, g.Topics(), "sensors")
	if len(ok) != 1 || mustHeader(t, ok[0], "content-type") != "application/json" {
		t.Fatalf("want 1 JSON record, got %+v", ok)
	}
	lab := readStream(t, g.Topics(), "lab")
	if info, _ := g.Topics().Get("lab"); info.Partitions != 2 || len(lab) != 1 || lab[0].Timestamp != 7000 {
		t.Fatalf("lab stream: partitions %d records %+v", info.Partitions, lab)
	}
}

func mustHeader(t *testing.T, r storedRecord, k string) string {
	t.Helper()
	v, ok := header(r.Record, k)
	if !ok {
		t.Fatalf("record at %d has no %s header", r.Offset, k)
	}
	return v
}

func bcryptHash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func authConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Auth.AllowAnonymous = false
	cfg.Auth.Devices = []auth.Device{{Username: "dev-1", PasswordHash: bcryptHash(t, "pw-1")}, {Username: "dev-2", PasswordHash: bcryptHash(t, "pw-2")}}
	return cfg
}

// TestAuthAndACL: wrong passwords, unknown users and anonymous clients are
// refused; a device may publish only under its own prefix, under both protocol
// versions; every refusal is counted.
func TestAuthAndACL(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, authConfig(t))
	addr := g.MQTTAddr()
	if _, err := pahoClient(t, addr, "bad-pw", "dev-1", "wrong"); err == nil {
		t.Fatal("paho connect with a wrong password succeeded")
	}
	if _, code, err := dialRaw(t, addr, 5, "bad5", "dev-1", "wrong"); err != nil || code != 0x86 {
		t.Fatalf("v5 wrong password: code %#x err %v, want 0x86", code, err)
	}
	if _, code, err := dialRaw(t, addr, 5, "unknown5", "dev-9", "pw-1"); err != nil || code != 0x86 {
		t.Fatalf("v5 unknown user: code %#x err %v, want 0x86", code, err)
	}
	if _, code, err := dialRaw(t, addr, 4, "anon", "", ""); err != nil || code == 0 {
		t.Fatalf("v3 anonymous: code %#x err %v, want refusal", code, err)
	}
	c5, code, err := dialRaw(t, addr, 5, "good5", "dev-1", "pw-1")
	if err != nil || code != 0 {
		t.Fatalf("v5 good login: code %#x err %v", code, err)
	}
	if code, err := c5.publish("sensors/dev-2/reading", jsonReading("dev-2", 0, 1), 1, "", 5*time.Second); err != nil || code != 0x87 {
		t.Fatalf("v5 foreign publish: code %#x err %v, want 0x87", code, err)
	}
	if code, err := c5.publish("sensors/dev-1/reading", jsonReading("dev-1", 0, 1), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("v5 own publish: code %#x err %v", code, err)
	}
	c3, code, err := dialRaw(t, addr, 4, "good3", "dev-2", "pw-2")
	if err != nil || code != 0 {
		t.Fatalf("v3 good login: code %#x err %v", code, err)
	}
	if _, err := c3.publish("sensors/dev-1/reading", jsonReading("dev-1", 1, 1), 1, "", 5*time.Second); err == nil {
		t.Fatal("v3 foreign QoS 1 publish was acknowledged")
	}
	recs := readStream(t, g.Topics(), "sensors")
	if len(recs) != 1 || string(recs[0].Key) != "dev-1" {
		t.Fatalf("stored %+v, want only dev-1's own reading", recs)
	}
	c := g.Ingest().Counts()
	if c.Refused[ingest.ReasonACL] != 2 || c.Connects["refused"] != 5 {
		t.Fatalf("counts %+v: want 2 ACL refusals and 5 refused connects (4 raw, 1 paho)", c)
	}
}

// TestDeadLetters: malformed payloads are acknowledged and kept in the
// dead-letter stream with a reason.
func TestDeadLetters(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	c := connectRaw(t, g.MQTTAddr(), 4, "dl")
	cases := []struct {
		topic   string
		payload []byte
		stream  string
		reason  string
	}{
		{"sensors/d1/reading", []byte{0xa3, 0x64, 'd', 'e'}, "sensors.dlq", "cbor"},
		{"sensors/d1/reading", []byte(`{"device":"d1","seq":`), "sensors.dlq", "json"},
		{"sensors/d1/reading", jsonReading("d2", 1, 1), "sensors.dlq", "device"},
		// Text is stored since ingest rules (auto falls back to text);
		// bytes that are neither JSON, CBOR nor text are still refused.
		{"sensors/d1/reading", []byte{0xff, 0x00, 0x01, 0xfe}, "sensors.dlq", "not JSON, CBOR"},
		{"loose", jsonReading("d1", 1, 1), "unmapped.dlq", "levels"},
	}
	for _, cs := range cases {
		if code, err := c.publish(cs.topic, cs.payload, 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish %q: code %#x err %v", cs.payload, code, err)
		}
	}
	got := append(readStream(t, g.Topics(), "sensors.dlq"), readStream(t, g.Topics(), "unmapped.dlq")...)
	if len(got) != len(cases) {
		t.Fatalf("%d dead letters, want %d", len(got), len(cases))
	}
	for i, cs := range cases {
		r := got[i]
		if !bytes.Equal(r.Value, cs.payload) {
			t.Errorf("case %d: value changed", i)
		}
		if reason := mustHeader(t, r, "reason"); !strings.Contains(reason, cs.reason) {
			t.Errorf("case %d: reason %q does not mention %q", i, reason, cs.reason)
		}
		if mustHeader(t, r, "mqtt-topic") != cs.topic {
			t.Errorf("case %d: wrong mqtt-topic", i)
		}
	}
	if n := len(readStream(t, g.Topics(), "sensors")); n != 0 {
		t.Fatalf("%d invalid payloads reached the sensors stream", n)
	}
	if d := g.Ingest().Counts().DeadLetters; d != float64(len(cases)) {
		t.Fatalf("dead letter counter %v, want %d", d, len(cases))
	}
}

// TestOversizedRefused: payloads over the limit are refused, with 0x83 and a
// reason string for MQTT 5 (PUBACK cannot carry 0x95) and no acknowledgement
// for 3.1.1, and never stored.
func TestOversizedRefused(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Ingest.MaxPayloadBytes = 1024
	g, _ := startGateway(t, cfg)
	pad := func(n int) []byte {
		p := []byte(fmt.Sprintf(`{"device":"d1","seq":1,"pad":"%s"}`, strings.Repeat("x", n)))
		return p
	}
	exact := pad(1024 - len(pad(0)))
	c5 := connectRaw(t, g.MQTTAddr(), 5, "big5")
	if code, err := c5.publish("sensors/d1/r", append(exact, ' '), 1, "", 5*time.Second); err != nil || code != 0x83 {
		t.Fatalf("v5 oversized: code %#x err %v, want 0x83", code, err)
	}
	if code, err := c5.publish("sensors/d1/r", exact, 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("v5 at the limit: code %#x err %v", code, err)
	}
	c3 := connectRaw(t, g.MQTTAddr(), 4, "big3")
	if _, err := c3.publish("sensors/d1/r", append(exact, ' '), 1, "", 500*time.Millisecond); err != errNoAck {
		t.Fatalf("v3 oversized: err %v, want no acknowledgement", err)
	}
	if n := len(readStream(t, g.Topics(), "sensors")); n != 1 {
		t.Fatalf("%d records stored, want only the one at the limit", n)
	}
	if r := g.Ingest().Counts().Refused[ingest.ReasonOversized]; r != 2 {
		t.Fatalf("oversized refusals %v, want 2", r)
	}
}

// TestLocalSubscribers: a subscriber on the gateway receives readings as
// from any broker.
func TestLocalSubscribers(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	sub := connectPaho(t, g.MQTTAddr(), "sub", "", "")
	var mu sync.Mutex
	var got [][]byte
	tok := sub.Subscribe("sensors/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		got = append(got, m.Payload())
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := connectPaho(t, g.MQTTAddr(), "pub", "", "")
	for i := 0; i < 5; i++ {
		if tok := pub.Publish("sensors/d1/r", 1, false, jsonReading("d1", uint64(i), 1)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	testkit.Eventually(t, 5*time.Second, "the subscriber to get all 5 messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 5
	})
}

// TestShutdownFlushesAndRestart: QoS 0 readings (appended without waiting
// for fsync) survive a graceful stop, and a restarted gateway appends after them.
func TestShutdownFlushesAndRestart(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	g, stop := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 4, "q0")
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := c.publish("sensors/d1/r", jsonReading("d1", uint64(i), 1), 0, "", 0); err != nil {
			t.Fatal(err)
		}
	}
	if recs := waitRecords(t, g.Topics(), "sensors", n); len(recs) != n {
		t.Fatalf("stored %d of %d", len(recs), n)
	}
	stop()
	if recs := readStreamOffline(t, cfg.DataDir, "sensors"); len(recs) != n {
		t.Fatalf("after stop: %d records, want %d", len(recs), n)
	}
	g2, _ := startGateway(t, cfg)
	if g2.EdgeID() != g.EdgeID() {
		t.Fatalf("edge id changed across restart: %s → %s", g.EdgeID(), g2.EdgeID())
	}
	c2 := connectRaw(t, g2.MQTTAddr(), 4, "q1")
	if code, err := c2.publish("sensors/d1/r", jsonReading("d1", n, 1), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish after restart: %#x %v", code, err)
	}
	recs := readStream(t, g2.Topics(), "sensors")
	if len(recs) != n+1 {
		t.Fatalf("after restart %d records, want %d", len(recs), n+1)
	}
}

// TestHTTPEndpoints: /healthz answers and /metrics carries the edge metrics,
// among them the fsync that a QoS 1 publish waited for.
func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	g, _ := startGateway(t, testConfig(t))
	if code, h := getHealth(t, g.HTTPAddr()); code != 200 || h.EdgeID != g.EdgeID() || h.Status != StatusOK {
		t.Fatalf("healthz: %d %+v", code, h)
	}
	c := connectRaw(t, g.MQTTAddr(), 4, "metrics")
	if code, err := c.publish("sensors/d1/r", jsonReading("d1", 1, 1), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish: %#x %v", code, err)
	}
	body := testkit.Metrics(t, g.HTTPAddr())
	for _, m := range []string{"tributary_edge_log_bytes", "go_goroutines"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	if m := regexp.MustCompile(`(?m)^tributary_storage_fsync_seconds_count (\d+)$`).FindStringSubmatch(body); m == nil || m[1] == "0" {
		t.Errorf("/metrics counts no fsync after a QoS 1 publish: %q", m)
	}
}

// TestHealthzReportsReadOnlyPartition: a partition that recovery finds
// corrupt in the middle makes /healthz answer 503 and name it, and the
// gateway still starts and serves the other streams.
func TestHealthzReportsReadOnlyPartition(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Log.SegmentBytes = 1024
	cfg.Ingest.Streams = map[string]ingest.StreamConfig{"sensors": {Partitions: 1}}
	g, stop := startGateway(t, cfg)
	c := connectRaw(t, g.MQTTAddr(), 4, "hz")
	for i := 0; i < 30; i++ {
		if code, err := c.publish("sensors/d1/r", jsonReading("d1", uint64(i), 1), 1, "", 5*time.Second); err != nil || code != 0 {
			t.Fatalf("publish: %#x %v", code, err)
		}
	}
	stop()
	seg := filepath.Join(cfg.DataDir, "logs", "sensors-0", "00000000000000000000.log")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // inside a sealed segment: not a torn tail
	if err := os.WriteFile(seg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Sealed segments are scanned when their index is rebuilt; losing the
	// index too is what makes recovery look inside.
	if err := os.Remove(strings.TrimSuffix(seg, ".log") + ".index"); err != nil {
		t.Fatal(err)
	}
	g2, _ := startGateway(t, cfg)
	if code, h := getHealth(t, g2.HTTPAddr()); code != http.StatusServiceUnavailable || len(h.ReadOnly) == 0 || h.Status != StatusFailing {
		t.Fatalf("healthz after corruption: %d %+v", code, h)
	}
	c2 := connectRaw(t, g2.MQTTAddr(), 5, "hz2")
	if code, err := c2.publish("other/d1/r", jsonReading("d1", 0, 1), 1, "", 5*time.Second); err != nil || code != 0 {
		t.Fatalf("publish to a healthy stream: %#x %v", code, err)
	}
	if code, err := c2.publish("sensors/d1/r", jsonReading("d1", 30, 1), 1, "", 5*time.Second); err != nil || code != 0x83 {
		t.Fatalf("publish to the read-only partition: %#x %v, want 0x83", code, err)
	}
}
