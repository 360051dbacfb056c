package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tributary-io/tributary/edge/gateway"
	"github.com/tributary-io/tributary/firmware-sim/reading"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	if got := percentile(nil, 0.5); got != 0 {
		t.Fatalf("percentile of nothing = %v", got)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(ds, q); got != want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", q, got, want)
		}
	}
}

// TestTrackerAndRender drives two refreshes through the tracker and checks
// the rates and what the terminal shows.
func TestTrackerAndRender(t *testing.T) {
	t.Parallel()
	devices := []string{"dev-000000", "dev-000200"}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	edges := func(stored0, fwd0 float64, err1 error) []edgeSample {
		return []edgeSample{
			{Name: "demo-edge-0", MQTT: "127.0.0.1:1883", Devices: 200, Fleet: fleetTotals{Connected: 200},
				Totals: edgeTotals{Appended: stored0, Bridge: true, Forwarded: fwd0, Backlog: 12, LogBytes: 3 << 20}},
			{Name: "demo-edge-1", MQTT: "127.0.0.1:1884", Devices: 200, Err: err1, FleetErr: errors.New("refused")},
		}
	}
	var tr tracker
	cs := consumerStats{Topics: map[string]topicTotals{"sensors": {Records: 1000}}}
	v := tr.build(start, edges(1000, 900, nil), cs, devices)
	if v.Edges[0].StoredRate != 0 || v.Streams[0].Rate != 0 {
		t.Fatalf("first refresh has rates %v, %v; want 0 (no interval yet)", v.Edges[0].StoredRate, v.Streams[0].Rate)
	}

	cs = consumerStats{
		Topics: map[string]topicTotals{"sensors": {Records: 1400, Lag: 7}, "sensors.dlq": {Records: 2}},
		Latest: map[string]latest{"dev-000000": {
			Reading: reading.Reading{Device: "dev-000000", Seq: 41, Temp: 21.25, Hum: 48.5, Vib: 0.125},
			EdgeID:  "demo-edge-0", Latency: 23 * time.Millisecond,
		}},
		Latencies: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond},
		Windows: map[string]map[string]window{"sensors.10s": {"dev-000000": func() window {
			w := window{Group: "dev-000000", WindowStart: start.UnixMilli(), WindowEnd: start.Add(10 * time.Second).UnixMilli(), Count: 10, EdgeID: "demo-edge-0"}
			w.Temp.Min, w.Temp.Mean, w.Temp.Max, w.Temp.P99 = 19, 20.5, 22, 21.9
			return w
		}()}},
	}
	v = tr.build(start.Add(2*time.Second), edges(1400, 1300, errors.New("connection refused")), cs, devices)
	if got := v.Edges[0].StoredRate; got != 200 {
		t.Errorf("stored rate = %v, want 200/s", got)
	}
	if got := v.Edges[0].ForwardRate; got != 200 {
		t.Errorf("forward rate = %v, want 200/s", got)
	}
	if len(v.Streams) != 2 || v.Streams[0].Topic != "sensors" || v.Streams[0].Rate != 200 || v.Streams[1].Rate != 0 {
		t.Fatalf("streams = %+v, want sensors at 200/s then sensors.dlq (new, no rate yet)", v.Streams)
	}
	if v.P50 != 20*time.Millisecond || v.P99 != 30*time.Millisecond || v.LatencyN != 3 {
		t.Errorf("latency p50 %v p99 %v n %d", v.P50, v.P99, v.LatencyN)
	}

	v.DataDir, v.Brokers, v.Group = "data/demo", []string{"127.0.0.1:9092"}, "tributary-demo"
	v.Exited = []string{"sim-1 exited (exit status 2): see data/demo/logs/sim-1.log"}
	var b strings.Builder
	v.render(&b)
	out := b.String()
	for _, want := range []string{
		"kcat -b 127.0.0.1:9092 -C -t sensors",
		"DOWN: sim-1 exited",
		"demo-edge-0  127.0.0.1:1883     200/200     200.0    1400",
		"demo-edge-1: connection refused",
		"?/200",
		`consumer group "tributary-demo"`,
		"sensors      200.0      1400    7",
		"p50 20ms  p99 30ms  (3 readings)",
		"dev-000000  demo-edge-0   41     21.2   48.5     0.125             23ms",
		"latest window per device in sensors.10s",
		"12:00:00–12:00:10        10    19.0     20.5    22.0    21.9",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("view lacks %q:\n%s", want, out)
		}
	}
	// A device not seen yet is a row of dashes, not zeros.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "dev-000200") && strings.Contains(line, "0.0") {
			t.Errorf("unseen device shows values: %q", line)
		}
	}
	if strings.Contains(out, "bridge: OFF") {
		t.Error("bridged view says the bridge is off")
	}
	v.BridgeOff = "no bridge"
	b.Reset()
	v.render(&b)
	if !strings.Contains(b.String(), "bridge: OFF (no bridge)") {
		t.Error("unbridged view does not say so")
	}
}

func TestEdgeConfig(t *testing.T) {
	t.Parallel()
	for _, bridged := range []bool{true, false} {
		b, err := edgeConfig("data/demo/edge-0", "demo-edge-0", "127.0.0.1:1883", "127.0.0.1:9654", []string{"127.0.0.1:9092"}, bridged)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			DataDir string `yaml:"data_dir"`
			EdgeID  string `yaml:"edge_id"`
			MQTT    struct {
				Address string `yaml:"address"`
			} `yaml:"mqtt"`
			HTTP struct {
				Address string `yaml:"address"`
			} `yaml:"http"`
			Auth struct {
				AllowAnonymous bool `yaml:"allow_anonymous"`
			} `yaml:"auth"`
			Bridge *struct {
				Brokers []string `yaml:"brokers"`
			} `yaml:"bridge"`
		}
		if err := yaml.Unmarshal(b, &got); err != nil {
			t.Fatalf("config does not parse: %v\n%s", err, b)
		}
		// tributary-edge itself accepts it, aggregation included.
		path := filepath.Join(t.TempDir(), "edge.yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := gateway.LoadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil || len(cfg.Aggregations) != 1 || cfg.Aggregations[0].Output != "sensors.10s" {
			t.Errorf("edge config: %v, aggregations %+v", err, cfg.Aggregations)
		}
		if got.DataDir != "data/demo/edge-0" || got.EdgeID != "demo-edge-0" || got.MQTT.Address != "127.0.0.1:1883" ||
			got.HTTP.Address != "127.0.0.1:9654" || !got.Auth.AllowAnonymous {
			t.Errorf("config = %+v", got)
		}
		if bridged != (got.Bridge != nil) || bridged && (len(got.Bridge.Brokers) != 1 || got.Bridge.Brokers[0] != "127.0.0.1:9092") {
			t.Errorf("bridged=%v: bridge section %+v", bridged, got.Bridge)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.brokers != 3 || o.edges != 2 || o.devices != 200 || o.bin != "bin" {
		t.Errorf("defaults = %+v", o)
	}
	for _, args := range [][]string{{"-brokers", "0"}, {"-brokers", "6"}, {"-edges", "0"}, {"-rate", "0"}, {"extra"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%v) accepted", args)
		}
	}
}
