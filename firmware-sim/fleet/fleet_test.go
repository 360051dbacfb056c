package fleet

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/firmware-sim/device"
	"github.com/tributary-io/tributary/firmware-sim/internal/mqtttest"
	"github.com/tributary-io/tributary/firmware-sim/reading"
	"github.com/tributary-io/tributary/firmware-sim/summary"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startBroker(t *testing.T) *mqtttest.Broker {
	t.Helper()
	b, err := mqtttest.Start(mqtttest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func baseConfig(broker string) Config {
	return Config{
		Devices: 20, IDPrefix: "dev-", Seed: 99, DrainTimeout: 10 * time.Second, Logger: quiet,
		Device: device.Config{Broker: "tcp://" + broker, Stream: "sensors", Encoding: reading.CBOR, QoS: 1,
			Rate: 200, Jitter: 0.3, Count: 20, MinBackoff: 20 * time.Millisecond},
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runFleet(t *testing.T, cfg Config) *summary.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("fleet ran into the test timeout")
	}
	return s
}

func bySeq(t *testing.T, b *mqtttest.Broker) map[string]map[uint64]reading.Reading {
	t.Helper()
	out := map[string]map[uint64]reading.Reading{}
	for _, p := range b.Publishes() {
		r, err := reading.Decode("", p.Payload)
		if err != nil {
			t.Fatalf("publish %q: %v", p.Payload, err)
		}
		if out[r.Device] == nil {
			out[r.Device] = map[uint64]reading.Reading{}
		}
		if _, dup := out[r.Device][r.Seq]; dup {
			t.Fatalf("%s seq %d published twice", r.Device, r.Seq)
		}
		out[r.Device][r.Seq] = r
	}
	return out
}

func TestCountRunWithStateContinuesNumbering(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	st := &summary.State{Next: map[string]uint64{}}
	cfg := baseConfig(b.Addr())
	cfg.State = st
	var progress syncBuffer
	cfg.Progress, cfg.ProgressEvery = &progress, 20*time.Millisecond

	s1 := runFleet(t, cfg)
	if s1.Totals.Devices != 20 || s1.Totals.Acked != 400 || s1.Totals.Required != 400 {
		t.Fatalf("first run totals %+v", s1.Totals)
	}
	if st.Next["dev-000000"] != 20 || st.Next["dev-000019"] != 20 {
		t.Fatalf("state after first run %v", st.Next)
	}
	s2 := runFleet(t, cfg)
	if s2.Devices[0].FirstSeq != 20 || s2.Devices[0].NextSeq != 40 || st.Next["dev-000007"] != 40 {
		t.Fatalf("second run did not continue: %+v", s2.Devices[0])
	}
	got := bySeq(t, b)
	if len(got) != 20 {
		t.Fatalf("%d devices published", len(got))
	}
	for dev, seqs := range got {
		if len(seqs) != 40 {
			t.Errorf("%s published %d distinct readings, want 40", dev, len(seqs))
		}
		for s := range uint64(40) {
			if _, ok := seqs[s]; !ok {
				t.Errorf("%s missing seq %d", dev, s)
			}
		}
	}
	if !strings.Contains(progress.String(), "connected ") || !strings.Contains(progress.String(), "acked ") {
		t.Errorf("no progress lines: %q", progress.String())
	}
	var out bytes.Buffer
	PrintSummary(&out, s2)
	if !strings.Contains(out.String(), "acked 400") {
		t.Errorf("summary text %q", out.String())
	}
}

func TestSameSeedSameValues(t *testing.T) {
	t.Parallel()
	values := func() map[string]map[uint64]reading.Reading {
		b := startBroker(t)
		cfg := baseConfig(b.Addr())
		cfg.Devices, cfg.Device.Count = 5, 10
		runFleet(t, cfg)
		return bySeq(t, b)
	}
	a, b := values(), values()
	for dev, seqs := range a {
		for seq, r := range seqs {
			o := b[dev][seq]
			if r.Temp != o.Temp || r.Hum != o.Hum || r.Vib != o.Vib {
				t.Fatalf("%s seq %d: %+v vs %+v", dev, seq, r, o)
			}
		}
	}
}

func TestDurationStopsAndDrainIsBounded(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cfg := baseConfig(b.Addr())
	cfg.Devices, cfg.Device.Count, cfg.Duration = 5, 0, 300*time.Millisecond
	reg := prometheus.NewRegistry()
	cfg.Metrics = reg
	s := runFleet(t, cfg)
	if s.Totals.Generated == 0 || s.Totals.Acked != s.Totals.Generated {
		t.Fatalf("duration run totals %+v", s.Totals)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	if got["tributary_sim_readings_acked_total"] != float64(s.Totals.Acked) || got["tributary_sim_devices_connected"] != 0 {
		t.Fatalf("metrics %v, acked %d", got, s.Totals.Acked)
	}
	cfg.Metrics = nil

	// Nobody listening: generation stops at the duration, the drain gives
	// up after its timeout and nothing is claimed as required.
	b.Close()
	cfg.DrainTimeout = 200 * time.Millisecond
	s = runFleet(t, cfg)
	if s.Totals.Acked != 0 || s.Totals.Required != 0 || s.Totals.Unsent != s.Totals.Generated {
		t.Fatalf("offline run totals %+v", s.Totals)
	}
	if _, err := Run(context.Background(), Config{Devices: 1}); err == nil {
		t.Fatal("a run without duration or count was accepted")
	}
}
