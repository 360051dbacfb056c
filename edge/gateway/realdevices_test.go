package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/edge/sparkplug"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/internal/testkit/coretest"
	"github.com/tributary-io/tributary/storage"
)

// loadRealDeviceRules reads testdata/real-devices.yaml (the README's rules)
// into cfg the way LoadConfig would.
func loadRealDeviceRules(t *testing.T, cfg *Config) {
	t.Helper()
	b, err := os.ReadFile("testdata/real-devices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("parse rules: %v", err)
	}
}

// startCore runs an in-process core on a free loopback port.
func startCore(t *testing.T) string {
	t.Helper()
	addr := testkit.FreeAddr(t)
	coretest.Start(t, server.Config{KafkaAddr: addr, DefaultPartitions: 1, Log: storage.LogConfig{SegmentBytes: 4 << 20}}, nil)
	return addr
}

// startBridgedGateway opens a gateway on cfg with the bridge attached as
// tributary-edge attaches it.
func startBridgedGateway(t *testing.T, cfg Config, core string) (*Gateway, func()) {
	t.Helper()
	g, err := Open(cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("open gateway: %v", err)
	}
	b, err := bridge.New(bridge.Config{Brokers: []string{core}, EdgeID: g.EdgeID(), BackoffMin: 20 * time.Millisecond,
		BackoffMax: 300 * time.Millisecond, RequestTimeout: 3 * time.Second, ScanInterval: 100 * time.Millisecond,
		MaxBatchBytes: 64 << 10}, g.Topics(), g.Meta(), g.Registry(), testkit.Logger(t))
	if err != nil {
		t.Fatalf("new bridge: %v", err)
	}
	g.Go("bridge", b.Run)
	return g, testkit.Run(t, "gateway", g.Run)
}

// coreRecords consumes topics from the core until want records arrived in
// total (and a short quiet spell showed no more), by topic.
func coreRecords(t *testing.T, core string, want int, topics ...string) map[string][]*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(core), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]*kgo.Record{}
	n := 0
	deadline := time.Now().Add(60 * time.Second)
	quietUntil := time.Time{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Topic] = append(got[r.Topic], r)
			n++
		})
		if n >= want {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(time.Second) // any duplicate would show now
			}
			if time.Now().After(quietUntil) {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("core: %d of %d records after 60s: %v", n, want, summary(got))
		}
	}
}

func summary(got map[string][]*kgo.Record) string {
	var b strings.Builder
	for tp, rs := range got {
		fmt.Fprintf(&b, "%s=%d ", tp, len(rs))
	}
	return b.String()
}

func kheader(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestRealDevicesThroughBridge publishes what real firmwares send, with
// mosquitto_pub (3.1.1 and 5) and paho, through the README's rules, the
// edge and the bridge, and reads each back from the core with franz-go
// (and kcat when installed) under the expected stream, key and timestamp,
// exactly once. The edge restarts between a Sparkplug birth and its data:
// the alias table comes back from the stored births.
func TestRealDevicesThroughBridge(t *testing.T) {
	t.Parallel()
	mosq := needMosquittoPub(t)
	core := startCore(t)
	cfg := testConfig(t)
	cfg.HTTP.Address = "-"
	loadRealDeviceRules(t, &cfg)
	g, stop := startBridgedGateway(t, cfg, core)
	start := time.Now().UnixMilli()

	pub := func(args ...string) {
		t.Helper()
		if err := mosquittoPub(t, mosq, g.MQTTAddr(), args...); err != nil {
			t.Fatal(err)
		}
	}
	// Tasmota (3.1.1, username and no password, as Tasmota connects).
	pub("-q", "1", "-u", "DVES_USER", "-r", "-t", "tele/plug-1/LWT", "-m", "Online")
	pub("-q", "1", "-u", "DVES_USER", "-t", "tele/plug-1/SENSOR",
		"-m", `{"Time":"2024-05-01T12:00:00","ENERGY":{"TotalStartTime":"2024-01-01T00:00:00","Total":1.5,"Power":42}}`)
	// Zigbee2MQTT (MQTT 5).
	pub("-V", "mqttv5", "-q", "1", "-t", "zigbee2mqtt/living_room", "-m", `{"temperature":21.5,"humidity":40,"linkquality":120}`)
	pub("-V", "mqttv5", "-q", "1", "-r", "-t", "zigbee2mqtt/bridge/state", "-m", `{"state":"online"}`)
	// Plain JSON with seq and time, published twice: stored once.
	for range 2 {
		pub("-q", "1", "-t", "devices/dev-7/telemetry", "-m", `{"seq":1,"ts":1700000000123,"temp":3.5}`)
	}

	pc := connectPaho(t, g.MQTTAddr(), "paho-fleet", "", "")
	ppub := func(c paho.Client, topic string, payload []byte) {
		t.Helper()
		if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	ppub(pc, "shellies/shelly1-abc/relay/0/power", []byte("42.5"))
	ppub(pc, "kitchen/sensor/temperature/state", []byte("21.4"))
	cb, err := cbor.Marshal(map[string]any{"n": "x", "v": 1.5})
	if err != nil {
		t.Fatal(err)
	}
	ppub(pc, "sensors/cb-1/any", cb)
	frame := make([]byte, 256)
	for i := range frame {
		frame[i] = byte(i)
	}
	ppub(pc, "raw/cam-1/frame", frame)

	// Sparkplug B: NBIRTH, DBIRTH, NDATA with aliases only.
	b := sparkplug.NewBuilder("g1", "node1", 0)
	temp := sparkplug.MustMetric("temp", sparkplug.DataType_Double, 21.5)
	temp.SetAlias(1)
	rpm := sparkplug.MustMetric("rpm", sparkplug.DataType_Int32, int32(1200))
	rpm.SetAlias(2)
	sp := func(c paho.Client, topic string, p []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		ppub(c, topic, p)
	}
	alias := func(a uint64, v any) *sparkplug.Payload_Metric {
		m, err := sparkplug.AliasMetric(a, sparkplug.DataType_Unknown, v)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tp, p, err := b.NBirth(temp)
	sp(pc, tp, p, err)
	tp, p, err = b.DBirth("motor-1", rpm)
	sp(pc, tp, p, err)
	tp, p, err = b.NData(alias(1, 22.0))
	sp(pc, tp, p, err)

	// Restart the edge between birth and data.
	pc.Disconnect(50)
	stop()
	g, _ = startBridgedGateway(t, cfg, core)
	pc = connectPaho(t, g.MQTTAddr(), "paho-fleet-2", "", "")
	tp, p, err = b.DData("motor-1", alias(2, int32(1300)))
	sp(pc, tp, p, err)
	b.SetSeq(9) // a seq gap: 4..8 never sent
	tp, p, err = b.NData(alias(1, 23.0))
	sp(pc, tp, p, err)
	tp, p, err = b.DDeath("motor-1")
	sp(pc, tp, p, err)
	end := time.Now().UnixMilli()

	streams := []string{"tasmota.status", "tasmota", "zigbee2mqtt", "zigbee2mqtt.bridge", "telemetry", "shelly", "esphome",
		"sensors", "frames", "plant.g1"}
	got := coreRecords(t, core, 15, streams...)
	one := func(stream, key string) *kgo.Record {
		t.Helper()
		var rs []*kgo.Record
		for _, r := range got[stream] {
			if string(r.Key) == key {
				rs = append(rs, r)
			}
		}
		if len(rs) != 1 {
			t.Fatalf("stream %s key %s: %d records, want exactly 1 (%s)", stream, key, len(rs), summary(got))
		}
		return rs[0]
	}
	recent := func(r *kgo.Record) {
		t.Helper()
		if ms := r.Timestamp.UnixMilli(); ms < start-1000 || ms > end+1000 {
			t.Errorf("%s/%s: timestamp %d not the receive time (%d..%d)", r.Topic, r.Key, ms, start, end)
		}
	}
	if r := one("tasmota.status", "plug-1"); string(r.Value) != "Online" || kheader(r, "value-kind") != "text" {
		t.Errorf("tasmota LWT: %q %v", r.Value, r.Headers)
	}
	// 12:00 in Berlin (CEST) is 10:00 UTC: but max_age 720h replaces a
	// 2024 time by the receive time and keeps the device's in device-time.
	r := one("tasmota", "plug-1")
	if kheader(r, "kind") != "SENSOR" || kheader(r, "device-time") != "1714557600000" {
		t.Errorf("tasmota SENSOR headers %v", r.Headers)
	}
	recent(r)
	recent(one("zigbee2mqtt", "living_room"))
	recent(one("zigbee2mqtt.bridge", "bridge"))
	if r := one("telemetry", "dev-7"); r.Timestamp.UnixMilli() != 1700000000123 {
		t.Errorf("telemetry timestamp %d", r.Timestamp.UnixMilli())
	}
	if r := one("shelly", "shelly1-abc"); string(r.Value) != "42.5" || kheader(r, "channel") != "relay/0/power" || kheader(r, "value-kind") != "number" {
		t.Errorf("shelly: %q %v", r.Value, r.Headers)
	}
	if r := one("esphome", "kitchen"); kheader(r, "sensor") != "temperature" || kheader(r, "content-type") != "text/plain" {
		t.Errorf("esphome: %v", r.Headers)
	}
	if r := one("sensors", "cb-1"); !bytes.Equal(r.Value, cb) || kheader(r, "content-type") != "application/cbor" {
		t.Errorf("cbor: %x %v", r.Value, r.Headers)
	}
	if r := one("frames", "cam-1"); !bytes.Equal(r.Value, frame) || kheader(r, "content-type") != "application/octet-stream" {
		t.Errorf("raw frame: %v", r.Headers)
	}
	for _, r := range got {
		for _, rec := range r {
			if kheader(rec, "edge-id") == "" {
				t.Errorf("%s/%s without edge-id header", rec.Topic, rec.Key)
			}
		}
	}

	// Sparkplug: 6 messages in order under key node1, JSON values.
	spk := got["plant.g1"]
	if len(spk) != 6 {
		t.Fatalf("plant.g1: %d records, want 6", len(spk))
	}
	types := []string{"NBIRTH", "DBIRTH", "NDATA", "DDATA", "NDATA", "DDEATH"}
	for i, r := range spk {
		if string(r.Key) != "node1" || kheader(r, "sparkplug-type") != types[i] || kheader(r, "content-type") != "application/json" ||
			len(kheader(r, "sparkplug-payload")) == 0 {
			t.Fatalf("sparkplug record %d: key %s headers %v", i, r.Key, r.Headers)
		}
		recent(r)
	}
	var ddata struct {
		Device  string `json:"device"`
		Metrics []struct {
			Name  *string `json:"name"`
			Value any     `json:"value"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(spk[3].Value, &ddata); err != nil {
		t.Fatal(err)
	}
	if ddata.Device != "motor-1" || len(ddata.Metrics) != 1 || ddata.Metrics[0].Name == nil || *ddata.Metrics[0].Name != "rpm" {
		t.Fatalf("DDATA after the restart not resolved through the restored birth: %s", spk[3].Value)
	}
	if h := kheader(spk[3], "sparkplug-seq-gap"); h != "" {
		t.Errorf("first message after the restart flagged as a gap: %s", h)
	}
	if h := kheader(spk[4], "sparkplug-seq-gap"); h != "expected 4 got 9" {
		t.Errorf("seq gap header %q", h)
	}

	// kcat reads the same records.
	if kcat, err := exec.LookPath("kcat"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, kcat, "-b", core, "-C", "-t", "shelly", "-e", "-q", "-f", "%k|%s|%h\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v: %s", err, out)
		}
		if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 ||
			!strings.HasPrefix(lines[0], "shelly1-abc|42.5|") || !strings.Contains(lines[0], "channel=relay/0/power") {
			t.Errorf("kcat shelly: %q", out)
		}
		out, err = exec.CommandContext(ctx, kcat, "-b", core, "-C", "-t", "plant.g1", "-e", "-q", "-f", "%k %T\n").CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v: %s", err, out)
		}
		if n := len(strings.Split(strings.TrimSpace(string(out)), "\n")); n != 6 {
			t.Errorf("kcat plant.g1: %d records: %q", n, out)
		}
	}
	if c := g.Ingest().Counts(); c.DeadLetters != 0 {
		t.Errorf("%v dead letters", c.DeadLetters)
	}
	// The gap is counted (by the edge that saw it: the second one).
	if n := counterValue(t, g, "tributary_edge_sparkplug_anomalies_total", "seq_gap"); n != 1 {
		t.Errorf("seq gaps counted %v, want 1", n)
	}
}

// counterValue reads one series of a counter from the gateway's registry.
func counterValue(t *testing.T, g *Gateway, name, label string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestExampleRulesAreTheTestedOnes: deploy/edge.example.yaml shows exactly
// the rules TestRealDevicesThroughBridge runs.
func TestExampleRulesAreTheTestedOnes(t *testing.T) {
	t.Parallel()
	example, err := LoadConfig("../../deploy/edge.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tested Config
	loadRealDeviceRules(t, &tested)
	if !reflect.DeepEqual(example.Ingest.Rules, tested.Ingest.Rules) {
		t.Fatalf("deploy/edge.example.yaml rules differ from testdata/real-devices.yaml:\n%+v\n%+v", example.Ingest.Rules, tested.Ingest.Rules)
	}
}
