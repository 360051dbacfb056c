package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary-io/tributary/bridge"
	"github.com/tributary-io/tributary/core/server"
	"github.com/tributary-io/tributary/edge/aggregate"
	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/edge/ingest"
	"github.com/tributary-io/tributary/firmware-sim/device"
	"github.com/tributary-io/tributary/firmware-sim/fleet"
	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/internal/stream"
	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// The end-to-end path of aggregated streams: two simulated fleets publish
// to one edge — stream "site" (forward: aggregates-only, aggregated on the
// edge into site.2s) and stream "sensors" (forwarded raw) — the bridge
// carries site.2s and sensors to a core started with this command's run()
// and an aggregations: section that aggregates sensors into sensors.2s.
// Both derived topics are read back from the core with franz-go and with
// kcat, and checked against a reference computed here from the raw
// readings (decoded with the simulator's own reading decoder): for every
// (device, window) that the watermark closed, exactly one record with
// count, min, max and mean of temp.
//
// Windows are 2 s here instead of 1 minute and 10 seconds: the same code
// path, in seconds.

const e2eWindow = 2 * time.Second
const e2eLateness = 3 * time.Second

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rawReading is one raw record as the reference sees it.
type rawReading struct {
	partition int32
	key       string
	ts        int64
	temp      float64
}

type windowAgg struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

// referenceWindows computes (key, window start) → temp aggregates and the
// watermark up to which windows are closed (min over partitions of the
// newest event time, minus the lateness).
func referenceWindows(t *testing.T, raw []rawReading, partitions int32) (map[string]windowAgg, int64) {
	t.Helper()
	size := e2eWindow.Milliseconds()
	sums := map[string]float64{}
	out := map[string]windowAgg{}
	maxTs := map[int32]int64{}
	for _, r := range raw {
		start := r.ts - ((r.ts%size)+size)%size
		k := windowKey(r.key, start)
		w, ok := out[k]
		if !ok {
			w.Min, w.Max = math.Inf(1), math.Inf(-1)
		}
		w.Count++
		w.Min = math.Min(w.Min, r.temp)
		w.Max = math.Max(w.Max, r.temp)
		sums[k] += r.temp
		out[k] = w
		maxTs[r.partition] = max(maxTs[r.partition], r.ts)
	}
	for k, w := range out {
		w.Mean = sums[k] / float64(w.Count)
		out[k] = w
	}
	if int32(len(maxTs)) != partitions {
		t.Fatalf("readings on %d of %d partitions: the watermark would never move", len(maxTs), partitions)
	}
	wm := int64(math.MaxInt64)
	for _, ts := range maxTs {
		wm = min(wm, ts-e2eLateness.Milliseconds())
	}
	return out, wm
}

// output is one derived record as read back.
type output struct {
	Group       string    `json:"group"`
	WindowStart int64     `json:"window_start"`
	WindowEnd   int64     `json:"window_end"`
	Count       int64     `json:"count"`
	Final       bool      `json:"final"`
	Temp        windowAgg `json:"temp"`
}

// checkOutputs compares the derived topic with the reference: no record
// twice, every record equal to its window, every closed window present.
func checkOutputs(t *testing.T, name string, got []output, want map[string]windowAgg, wm int64) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range got {
		k := windowKey(o.Group, o.WindowStart)
		if seen[k] {
			t.Errorf("%s: window %s twice", name, k)
			continue
		}
		seen[k] = true
		w, ok := want[k]
		if !ok {
			t.Errorf("%s: window %s not in the reference", name, k)
			continue
		}
		if !o.Final || o.Count != w.Count || o.Temp.Count != w.Count || o.Temp.Min != w.Min || o.Temp.Max != w.Max ||
			math.Abs(o.Temp.Mean-w.Mean) > 1e-9*math.Max(1, math.Abs(w.Mean)) || o.WindowEnd != o.WindowStart+e2eWindow.Milliseconds() {
			t.Errorf("%s: window %s = %+v, want %+v", name, k, o, w)
		}
	}
	closed := 0
	for k := range want {
		if windowClosed(k, wm) {
			closed++
			if !seen[k] {
				t.Errorf("%s: closed window %s missing", name, k)
			}
		}
	}
	// At least one closed window per device group (12 devices per fleet):
	// how many more close depends on how fast a loaded machine lets the
	// fleet connect, which is not what this test checks.
	if closed < 12 {
		t.Errorf("%s: only %d closed windows in the reference", name, closed)
	}
	t.Logf("%s: %d outputs, %d closed windows in the reference", name, len(got), closed)
}

// windowKey names a window in the reference: its group and start (ms).
func windowKey(group string, start int64) string { return fmt.Sprintf("%s@%d", group, start) }

// windowClosed says whether the reference window k ends at or before the
// watermark wm.
func windowClosed(k string, wm int64) bool {
	var start int64
	fmt.Sscanf(k[strings.LastIndexByte(k, '@')+1:], "%d", &start)
	return start+e2eWindow.Milliseconds() <= wm
}

// missingClosed counts the closed windows of want that got lacks.
func missingClosed(got []output, want map[string]windowAgg, wm int64) int {
	have := map[string]bool{}
	for _, o := range got {
		have[windowKey(o.Group, o.WindowStart)] = true
	}
	missing := 0
	for k := range want {
		if windowClosed(k, wm) && !have[k] {
			missing++
		}
	}
	return missing
}

// consumeAll reads a core topic from the start to its current end.
func consumeAll(t *testing.T, addr, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	idle := 0
	for idle < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return out
}

func decodeOutputs(t *testing.T, recs []*kgo.Record) []output {
	t.Helper()
	var out []output
	for _, r := range recs {
		var o output
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("output %s: %v", r.Value, err)
		}
		hasID := false
		for _, h := range r.Headers {
			hasID = hasID || h.Key == stream.HeaderID
		}
		if string(r.Key) != o.Group || r.Timestamp.UnixMilli() != o.WindowEnd || !hasID {
			t.Errorf("output record key %q ts %d headers %v for %+v", r.Key, r.Timestamp.UnixMilli(), r.Headers, o)
		}
		out = append(out, o)
	}
	return out
}

// kcatOutputs reads a topic with kcat: one JSON value per line.
func kcatOutputs(t *testing.T, addr, topic string) []output {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", topic, err, stderr.String())
	}
	var out []output
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var o output
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("kcat line %q: %v", line, err)
		}
		out = append(out, o)
	}
	return out
}

func sameOutputs(a, b []output) bool {
	key := func(os []output) []string {
		var ks []string
		for _, o := range os {
			j, _ := json.Marshal(o)
			ks = append(ks, string(j))
		}
		sort.Strings(ks)
		return ks
	}
	ka, kb := key(a), key(b)
	if len(ka) != len(kb) {
		return false
	}
	for i := range ka {
		if ka[i] != kb[i] {
			return false
		}
	}
	return true
}

func TestAggregatedStreamsEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat not installed (apt-get install kcat)")
	}
	if testing.Short() {
		t.Skip("end to end: seconds of simulated fleet")
	}
	dir := t.TempDir()
	aggYAML := fmt.Sprintf(`aggregation_checkpoint_interval: 200ms
aggregations:
  - name: 2s
    source: sensors
    fields: [{name: temp, path: temp}]
    window: {type: tumbling, size: %s}
    aggregates: [count, min, max, mean]
    lateness: %s
`, e2eWindow, e2eLateness)
	cfgPath := filepath.Join(dir, "core.yaml")
	if err := os.WriteFile(cfgPath, []byte(aggYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	coreCtx, stopCore := context.WithCancel(context.Background())
	coreReady := make(chan *server.Server, 1)
	coreDone := make(chan error, 1)
	go func() {
		coreDone <- run(coreCtx, []string{"-config", cfgPath, "-data-dir", filepath.Join(dir, "core"),
			"-kafka-addr", "127.0.0.1:0", "-http-addr", "-", "-default-partitions", "2", "-log-level", "warn"}, io.Discard,
			func(s *server.Server) { coreReady <- s })
	}()
	var srv *server.Server
	select {
	case srv = <-coreReady:
	case err := <-coreDone:
		t.Fatalf("core: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("core did not start")
	}
	defer func() {
		stopCore()
		select {
		case err := <-coreDone:
			if err != nil {
				t.Errorf("core: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("core did not stop")
		}
	}()
	coreAddr := srv.Addr()

	// The edge, wired as tributary-edge's main does.
	ecfg := gateway.Defaults()
	ecfg.DataDir = filepath.Join(dir, "edge")
	ecfg.MQTT.Address = "127.0.0.1:0"
	ecfg.HTTP.Address = "-"
	ecfg.Auth.AllowAnonymous = true
	ecfg.Ingest.DefaultPartitions = 2
	ecfg.Ingest.Streams = map[string]ingest.StreamConfig{"site": {Forward: ingest.ForwardAggregatesOnly}}
	ecfg.Bridge = bridge.Config{Brokers: []string{coreAddr}, ScanInterval: 200 * time.Millisecond}
	ecfg.AggregationCheckpointInterval = 200 * time.Millisecond
	ecfg.Aggregations = []stream.Aggregation{{
		Name: "2s", Source: "site",
		Fields:     []stream.Field{{Name: "temp", Path: "temp"}},
		Window:     &stream.Window{Type: stream.Tumbling, Size: e2eWindow},
		Aggregates: []string{"count", "min", "max", "mean"},
		Lateness:   e2eLateness,
	}}
	g, err := gateway.Open(ecfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bridge.New(ecfg.Bridge, g.Topics(), g.Meta(), g.Registry(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b.KeepLocal(ecfg.Ingest.LocalStreams()...)
	g.Go("bridge", b.Run)
	aggs, err := aggregate.New(ecfg.Aggregations, ecfg.AggregationCheckpointInterval, g.Topics(), g.Meta(), g.Registry(), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	aggs.HoldRetention(ecfg.Ingest.LocalStreams()...)
	for _, r := range aggs.Runners() {
		g.Go("aggregation "+r.Agg.Name, r.Run)
	}
	stopEdge := testkit.Run(t, "edge", g.Run)
	defer stopEdge()

	// Two fleets, one per stream.
	var wg sync.WaitGroup
	for _, s := range []string{"site", "sensors"} {
		wg.Go(func() {
			sum, err := fleet.Run(context.Background(), fleet.Config{
				Devices: 12, IDPrefix: s + "-", Seed: 7, Duration: 9 * time.Second, DrainTimeout: 10 * time.Second,
				Logger: quietLog(),
				Device: device.Config{Broker: "tcp://" + g.MQTTAddr(), Stream: s, Kind: "reading", Encoding: reading.CBOR,
					QoS: 1, Rate: 10, Jitter: 0.2, QueueSize: 1000, Inflight: 32, AckTimeout: 30 * time.Second,
					MinBackoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second},
			})
			if err != nil {
				t.Errorf("fleet %s: %v", s, err)
				return
			}
			if sum.Totals.Acked < 500 {
				t.Errorf("fleet %s: only %d readings acknowledged", s, sum.Totals.Acked)
			}
		})
	}
	wg.Wait()

	// The raw readings, as stored: site on the edge (it never leaves it),
	// sensors on the core.
	var siteRaw []rawReading
	siteInfo, _ := g.Topics().Get("site")
	for p := int32(0); p < siteInfo.Partitions; p++ {
		l, _ := g.Topics().Partition("site", p)
		if err := l.WaitSynced(context.Background(), l.NextOffset()); err != nil {
			t.Fatal(err)
		}
		for _, r := range testkit.LogRecords(t, l) {
			siteRaw = append(siteRaw, rawFrom(t, p, r.Key, r.Value, r.Timestamp, r.Headers))
		}
	}
	siteWant, siteWM := referenceWindows(t, siteRaw, siteInfo.Partitions)

	// Wait until the bridge has carried sensors and site.2s has every
	// closed window, then read back.
	deadline := time.Now().Add(60 * time.Second)
	var siteGot []output
	closedMissing := 0
	if !testkit.Poll(time.Until(deadline), func() bool {
		siteGot = decodeOutputs(t, consumeAll(t, coreAddr, "site.2s"))
		closedMissing = missingClosed(siteGot, siteWant, siteWM)
		return closedMissing == 0
	}) {
		t.Fatalf("site.2s on the core still lacks %d closed windows", closedMissing)
	}
	checkOutputs(t, "site.2s (edge aggregation, via the bridge)", siteGot, siteWant, siteWM)
	if k := kcatOutputs(t, coreAddr, "site.2s"); !sameOutputs(k, siteGot) {
		t.Errorf("kcat read %d site.2s records, franz-go %d; they differ", len(k), len(siteGot))
	}

	// sensors: raw on the core, aggregated there.
	var sensorsRaw []rawReading
	var sensorsWant map[string]windowAgg
	var sensorsWM int64
	var sensorsGot []output
	if !testkit.Poll(time.Until(deadline), func() bool {
		sensorsRaw = sensorsRaw[:0]
		for _, r := range consumeAll(t, coreAddr, "sensors") {
			var hs []recordbatch.RecordHeader
			for _, h := range r.Headers {
				hs = append(hs, recordbatch.RecordHeader{Key: h.Key, Value: h.Value})
			}
			sensorsRaw = append(sensorsRaw, rawFrom(t, r.Partition, r.Key, r.Value, r.Timestamp.UnixMilli(), hs))
		}
		if len(sensorsRaw) == 0 {
			return false
		}
		sensorsWant, sensorsWM = referenceWindows(t, sensorsRaw, 2)
		sensorsGot = decodeOutputs(t, consumeAll(t, coreAddr, "sensors.2s"))
		return missingClosed(sensorsGot, sensorsWant, sensorsWM) == 0 && len(sensorsRaw) >= 500
	}) {
		t.Fatalf("sensors.2s on the core incomplete: %d raw records, %d outputs", len(sensorsRaw), len(sensorsGot))
	}
	checkOutputs(t, "sensors.2s (core aggregation)", sensorsGot, sensorsWant, sensorsWM)
	if k := kcatOutputs(t, coreAddr, "sensors.2s"); !sameOutputs(k, sensorsGot) {
		t.Errorf("kcat read %d sensors.2s records, franz-go %d; they differ", len(k), len(sensorsGot))
	}

	// The raw site stream never reached the core, the bridge does not
	// forward it, and its retention is held only where the edge
	// aggregation has got to (not at 0 by the bridge).
	if info, ok := srv.Topics().Get("site"); ok {
		t.Errorf("the core has the aggregates-only stream's raw topic: %+v", info)
	}
	for _, ps := range b.Status().Partitions {
		if ps.Stream == "site" {
			t.Errorf("the bridge forwards the aggregates-only stream: %+v", ps)
		}
	}
	for p := int32(0); p < siteInfo.Partitions; p++ {
		l, _ := g.Topics().Partition("site", p)
		if f := l.RetentionFloor(); f <= 0 || f > l.NextOffset() {
			t.Errorf("site-%d: retention floor %d; want the aggregation's checkpoint in (0, %d]", p, f, l.NextOffset())
		}
	}
	for _, st := range aggs.Status() {
		if !st.Running || st.LastCheckpoint.IsZero() || st.Processed < 500 {
			t.Errorf("edge aggregation status %+v", st)
		}
	}
}

// rawFrom decodes one raw reading with the simulator's decoder.
func rawFrom(t *testing.T, p int32, key, value []byte, ts int64, headers []recordbatch.RecordHeader) rawReading {
	t.Helper()
	ct := ""
	for _, h := range headers {
		if h.Key == "content-type" {
			ct = string(h.Value)
		}
	}
	rd, err := reading.Decode(ct, value)
	if err != nil {
		t.Fatalf("raw reading (content-type %q): %v", ct, err)
	}
	return rawReading{partition: p, key: string(key), ts: ts, temp: rd.Temp}
}

// TestAggregationConfig: the aggregations section sits beside the broker's
// settings, and a mistake in it fails start-up with one line naming the
// field.
func TestAggregationConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, fmt.Sprint(len(body), ".yaml"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("default_partitions: 3\naggregations:\n  - {name: 10s, source: sensors, fields: [{path: temp}], window: {type: tumbling, size: 10s}, aggregates: [count, p99]}\n")
	cfg, logs, err := loadConfig([]string{"-config", good}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultPartitions != 3 || len(logs.aggs.Aggregations) != 1 || logs.aggs.Aggregations[0].Output != "sensors.10s" ||
		logs.aggs.CheckpointInterval != time.Second {
		t.Errorf("parsed %+v / %+v", cfg, logs.aggs)
	}
	for body, want := range map[string]string{
		"aggregations:\n  - {name: x, source: sensors, fields: [{path: temp}], window: {type: tumbling, size: 10s}, aggregates: [median]}\n": `aggregations[0].aggregates[0]: unknown aggregate "median"`,
		"aggregations:\n  - {name: x, source: sensors, fields: [{path: temp}], windw: {type: tumbling}}\n":                                   "windw",
		"aggregation_checkpoint_interval: 1ms\naggregations:\n  - {name: x, source: s, fields: [{path: t}], deadband: {delta: 1}}\n":         "aggregation_checkpoint_interval: 1ms is below 10ms",
	} {
		_, _, err := loadConfig([]string{"-config", write(body)}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("config %q: error %v, want one line with %q", body, err, want)
		}
	}
}
